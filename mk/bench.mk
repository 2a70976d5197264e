# ----- benchmarks (see BENCHMARKS.md) -----
BENCH_VENV := .venv-bench
BPY := $(BENCH_VENV)/bin/python
BENCH_STAMP := $(BENCH_VENV)/.deps-stamp
# A target dir of its own: the release builds here never trade artifacts with `make build`.
BENCH_TARGET := target/bench
# The free-threaded interpreter (scripts/free-threaded-python.sh); scaling runs only if present.
FT_PY := .venv-ft/bin/python
FT_BENCH_VENV := .venv-bench-ft

$(BENCH_STAMP): benches/requirements.txt
	@test -x $(BPY) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BPY) -m pip install -q --upgrade pip
	@# One line at a time: a peer the registry cannot provide is reported by the bench, not fatal.
	@grep -Ev '^[[:space:]]*(#|$$)' benches/requirements.txt | while read -r req; do \
	  $(BPY) -m pip install -q "$$req" || echo "bench: could not install $$req; the bench lists it as not installed"; \
	done
	@touch $@

.PHONY: bench-release
bench-release: $(BENCH_STAMP)
	rm -rf $(BENCH_TARGET)/wheels $(BENCH_TARGET)/wheels-ft
	$(BENCH_VENV)/bin/maturin build -q --release -i $(BPY) --target-dir $(BENCH_TARGET) -o $(BENCH_TARGET)/wheels
	$(BPY) -m pip install -q --force-reinstall --no-deps $(BENCH_TARGET)/wheels/*.whl
	@if [ -x $(FT_PY) ]; then \
	  set -x; \
	  test -x $(FT_BENCH_VENV)/bin/python || $(FT_PY) -m venv $(FT_BENCH_VENV); \
	  $(BENCH_VENV)/bin/maturin build -q --release -i $(FT_BENCH_VENV)/bin/python --target-dir $(BENCH_TARGET) -o $(BENCH_TARGET)/wheels-ft; \
	  $(FT_BENCH_VENV)/bin/python -m pip install -q --force-reinstall --no-deps $(BENCH_TARGET)/wheels-ft/*.whl; \
	else \
	  rm -rf $(FT_BENCH_VENV); \
	  echo "bench: no $(FT_PY); free-threaded scaling will not be measured"; \
	fi

.PHONY: bench
bench: bench-release ## Full benchmarks on the release build (~10 min); writes BENCHMARKS.md
	CARGO_TARGET_DIR=$(BENCH_TARGET) cargo bench --bench core
	$(BPY) benches/report.py --criterion-dir $(BENCH_TARGET)/criterion --json $(BENCH_TARGET)/results.json --write BENCHMARKS.md

.PHONY: bench-smoke
bench-smoke: $(BENCH_STAMP) ## Short run of the Python bench harness (CI; figures not meaningful)
	rm -rf target/bench-smoke
	$(BENCH_VENV)/bin/maturin build -q -i $(BPY) -o target/bench-smoke
	$(BPY) -m pip install -q --force-reinstall --no-deps target/bench-smoke/*.whl
	$(BPY) benches/report.py --smoke

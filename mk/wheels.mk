# ----- prebuilt wheels, the sdist, and the release workflow's lint -----
# `make wheels` builds into dist/: one abi3 wheel for GIL CPython >= 3.10, one cp313t wheel for
# free-threaded 3.13 (abi3 cannot load there), both manylinux2014 (glibc 2.17) through zig,
# and the sdist. `make wheels-check` installs each into a fresh venv with no build tool in reach
# and smoke-tests it (scripts/wheels-check.sh, scripts/smoke_wheel.py). See RELEASING.md.

WHEELS_VENV := .venv-wheels
WHEELS_STAMP := $(WHEELS_VENV)/.deps-stamp
# Build-and-check tools, kept out of .venv so `make test` never waits for them.
WHEELS_TOOLS := maturin==1.16.0 ziglang==0.17.0 auditwheel==6.8.2 twine==7.0.0
# manylinux2014 = glibc 2.17; zig links against that glibc's symbol versions.
WHEEL_COMPAT ?= manylinux2014
DIST := dist
# Own target directories: the wheel builds neither evict nor are evicted by `make build`.
WHEELS_TARGET := $(CURDIR)/target/wheels
WHEEL_INPUTS := Cargo.toml Cargo.lock pyproject.toml README.md LICENSE $(wildcard src/*.rs) \
	$(wildcard python/resilience/*.py python/resilience/*/*.py python/resilience/*.pyi) \
	python/resilience/py.typed
WHEELS_ENV := PATH="$(CURDIR)/$(WHEELS_VENV)/bin:$$PATH"

$(WHEELS_STAMP): mk/wheels.mk
	@test -x $(WHEELS_VENV)/bin/python || $(PYTHON) -m venv $(WHEELS_VENV)
	$(WHEELS_VENV)/bin/python -m pip install -q --upgrade pip
	$(WHEELS_VENV)/bin/python -m pip install -q $(WHEELS_TOOLS)
	@touch $@

# The two wheels build side by side (two cores; each ends in a single-threaded LTO step).
$(DIST)/.stamp: $(WHEEL_INPUTS) $(WHEELS_STAMP) scripts/free-threaded-python.sh
	@rm -rf $(DIST) && mkdir -p $(DIST)/.logs
	@ftpy="$$(bash scripts/free-threaded-python.sh | tail -n 1)"; start=$$SECONDS; \
	  build() { $(WHEELS_ENV) CARGO_TARGET_DIR="$(WHEELS_TARGET)-$$1" $(WHEELS_VENV)/bin/maturin build \
	    --release --zig --compatibility $(WHEEL_COMPAT) --interpreter "$$2" --out $(DIST) \
	    >$(DIST)/.logs/$$1.log 2>&1; }; \
	  echo "building the abi3 wheel ($(PYTHON)) and the cp313t wheel ($$ftpy) in parallel"; \
	  build abi3 "$$($(PYTHON) -c 'import sys; print(sys.executable)')" & abi3=$$!; build ft "$$ftpy" & ft=$$!; ok=1; \
	  for job in abi3:$$abi3 ft:$$ft; do \
	    if ! wait "$${job#*:}"; then ok=0; echo "--- $${job%%:*} build failed:"; tail -n 30 "$(DIST)/.logs/$${job%%:*}.log"; fi; \
	  done; \
	  ((ok)); echo "wheels built in $$((SECONDS - start))s"
	$(WHEELS_ENV) $(WHEELS_VENV)/bin/maturin sdist --out $(DIST) >$(DIST)/.logs/sdist.log 2>&1 \
	  || { cat $(DIST)/.logs/sdist.log; exit 1; }
	@for whl in $(DIST)/*.whl; do $(WHEELS_VENV)/bin/auditwheel show "$$whl" | tr '\n' ' ' \
	  | sed -e 's/ \+/ /g' -e 's/\(tag: "[^"]*"\).*/\1/'; echo; done
	@ls -l $(DIST) | tail -n +2
	@touch $@

.PHONY: wheels
wheels: $(DIST)/.stamp ## Build the abi3 and cp313t manylinux wheels and the sdist into dist/

.PHONY: wheels-check
wheels-check: $(DIST)/.stamp ## Install each wheel (and the sdist) into a fresh venv and smoke-test it
	$(WHEELS_ENV) bash scripts/wheels-check.sh --dist $(DIST) --require-all --sdist --audit --twine

.PHONY: lint-actions
lint-actions: $(STAMP) ## Lint .github/workflows/*.yml with actionlint
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/actionlint .github/workflows/*.yml

# The project's front door. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.deps-stamp

# Feature areas keep their targets in mk/*.mk.
include $(sort $(wildcard mk/*.mk))

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -r requirements-dev.txt
	@touch $@

.PHONY: venv
venv: $(STAMP) ## Create or update .venv with the pinned tools

.PHONY: build
build: $(STAMP) ## Build the extension into .venv (debug profile, fast to compile)
	$(VENV)/bin/maturin develop -q

.PHONY: build-release
build-release: $(STAMP) ## Build the extension into .venv with the release profile
	$(VENV)/bin/maturin develop -q --release

.PHONY: test
test: build ## Run the Rust and Python test suites
	cargo test -q
	$(VPY) -m pytest -q

.PHONY: lint
lint: build ## rustfmt, clippy, ruff, mypy --strict, stubtest
	cargo fmt --check
	cargo clippy -q --all-targets -- -D warnings
	cargo clippy -q --all-targets --features python -- -D warnings
	$(VENV)/bin/ruff check python tests examples benches
	$(VENV)/bin/ruff format --check python tests examples benches
	$(VENV)/bin/mypy --strict python/resilience
	$(VPY) -m mypy.stubtest resilience._core
	$(MAKE) --no-print-directory lint-actions

.PHONY: demo
demo: build-release ## Replay an outage against two breaker configurations; writes demo.png
	$(VPY) -m resilience simulate outage --compare preset=critical --plot demo.png

# ----- free-threaded CPython 3.13t -----
FT_VENV := .venv-ft
FT_STAMP := $(FT_VENV)/.deps-stamp

$(FT_STAMP): requirements-ft.txt scripts/free-threaded-python.sh
	@ftpy="$$(bash scripts/free-threaded-python.sh | tail -n 1)"; \
	  test -x $(FT_VENV)/bin/python || "$$ftpy" -m venv $(FT_VENV)
	$(FT_VENV)/bin/python -m pip install -q --upgrade pip
	$(FT_VENV)/bin/python -m pip install -q -r requirements-ft.txt
	@touch $@

.PHONY: build-ft
build-ft: $(FT_STAMP) ## Build the extension (cp313t) into .venv-ft, building CPython 3.13t if needed
	VIRTUAL_ENV=$(CURDIR)/$(FT_VENV) $(FT_VENV)/bin/maturin develop -q

.PHONY: test-ft
test-ft: build-ft ## Run the whole pytest suite on free-threaded CPython 3.13t, GIL off
	env -u PYTHON_GIL RESILIENCE_FT_PYTHON=$(CURDIR)/$(FT_VENV)/bin/python \
	  $(FT_VENV)/bin/python -m pytest -q -p no:run_parallel
	env -u PYTHON_GIL $(FT_VENV)/bin/python -m pytest -q --parallel-threads=4

# ----- loom model checking of the core's atomics -----
.PHONY: test-loom
test-loom: ## Model-check the core's atomics with loom (LOOM_MAX_PREEMPTIONS=2)
	RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
	  cargo test --release --test loom_models -- --nocapture

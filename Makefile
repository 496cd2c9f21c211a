# The two commands of the quick start (README.md):
#   make demo   - set up, then run the main job on sample data it makes itself
#   make test   - set up, then run the whole test suite (ruff, mypy --strict, pytest)
# `make bench` runs the benchmarks (benchmarks/README.md); `make lock` refreshes the
# dependency lock in requirements/ after a dependency changes in pyproject.toml.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements/lock.txt requirements/build.txt

.PHONY: demo test bench lock lock-upgrade system-deps wasm clean

# Set-up: exactly the locked set, every file checked against its SHA-256, in a venv made
# anew (nothing left from an earlier set). Build tools first, then the lock without build
# isolation (a source distribution is built with the pinned tools, never fetched ones),
# then blindmatch itself without dependencies. A changed lock or pyproject.toml redoes it.
$(STAMP): pyproject.toml $(LOCK)
	PYTHON=$(PYTHON) bash scripts/system-deps
	$(PYTHON) scripts/check-lock
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install -q --require-hashes --no-deps -r requirements/build.txt
	$(BIN)/python -m pip install -q --require-hashes --no-build-isolation -r requirements/lock.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

system-deps:
	PYTHON=$(PYTHON) bash scripts/system-deps

demo: $(STAMP)
	$(BIN)/blindmatch demo --out demo-out

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks && $(BIN)/ruff format --check --extend-exclude tests/vectors src tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# Rebuild the reporting page's PDQ WebAssembly module (src/blindmatch/web/static/pdq.wasm,
# checked in) from the C core, with Debian's clang + lld; byte for byte the same per clang.
wasm: $(STAMP)
	$(BIN)/python -m blindmatch.web.wasm_build

# Re-resolve requirements/ from pyproject.toml (all extras) and requirements/build.in,
# keeping every pinned version that still fits; lock-upgrade moves all to the newest.
lock:
	PYTHON=$(PYTHON) bash scripts/lock

lock-upgrade:
	UPGRADE=1 PYTHON=$(PYTHON) bash scripts/lock

clean:
	rm -rf $(VENV) .venv-lock demo-out .pytest_cache .mypy_cache .ruff_cache

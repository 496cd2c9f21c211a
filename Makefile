# The two commands of the quick start (README.md):
#   make demo   - set up, then run the main job on sample data it makes itself
#   make test   - set up, then run the whole test suite (ruff, mypy --strict, pytest)
# `make bench` runs the benchmarks (benchmarks/README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench system-deps clean

$(STAMP): pyproject.toml
	bash scripts/system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[video,test,bench,service]'
	touch $(STAMP)

system-deps:
	bash scripts/system-deps

demo: $(STAMP)
	$(BIN)/blindmatch demo --out demo-out

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) demo-out .pytest_cache .mypy_cache .ruff_cache

# ferry — every entry point a user or CI needs. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
FORMATTED := ferry ferry_cli glue_jobs chalice_app/app.py chalice_app/chalicelib tests

CHAOS_ARGS ?=

.PHONY: help install demo chaos test test-unit test-functional test-spark lint fmt typecheck vendor glue-zip clean

help:
	@echo "make demo   - set up, start the embedded emulator and migrate a live table end to end"
	@echo "make test   - set up, lint (ruff, mypy) and run the whole suite (unit, functional, spark, e2e)"
	@echo "make chaos  - seeded campaign of live traffic, injected faults and crashes (under 10 min)"
	@echo "make lint   - ruff + mypy"
	@echo "make vendor - copy the ferry core into chalice_app/vendor for packaging"
	@echo "make glue-zip - build/ferry.zip for Glue's --extra-py-files"

$(STAMP): pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ferry demo

chaos: $(STAMP)
	$(VENV)/bin/ferry chaos $(CHAOS_ARGS)

test: lint
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-functional: $(STAMP)
	$(PY) -m pytest -m functional $(PYTEST_ARGS)

test-spark: $(STAMP)
	$(PY) -m pytest -m spark $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check $(FORMATTED)
	$(PY) -m mypy

fmt: $(STAMP)
	$(PY) -m ruff format $(FORMATTED)
	$(PY) -m ruff check --fix .

vendor:
	rm -rf chalice_app/vendor && mkdir -p chalice_app/vendor
	cp -r ferry chalice_app/vendor/ferry
	find chalice_app/vendor -name __pycache__ -prune -exec rm -rf {} +

glue-zip:
	mkdir -p build && rm -f build/ferry.zip
	$(PY) -c "import shutil; shutil.make_archive('build/ferry', 'zip', '.', 'ferry')"

clean:
	rm -rf build chalice_app/vendor .pytest_cache .ruff_cache .mypy_cache

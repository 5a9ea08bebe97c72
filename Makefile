# Two commands do all the set-up on a fresh Linux machine:
#   make run    opens Learn&Drop Studio on the embedded default (digits); headless: make demo
#   make test   import contracts, ruff, mypy on core and app, the whole test suite
#   make test-fast   ruff and the tests not marked slow (no subprocesses, signal trials,
#                    fuzzing or longer runs): the quick check while working
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run demo test test-fast bench lint lint-imports clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	# one line naming what to install when Qt cannot open a window here
	$(VENV)/bin/learndrop studio --check
	$(VENV)/bin/learndrop studio

# the app's defaults (10 epochs): enough for the settled blocks to be dropped on digits
demo: $(STAMP)
	$(VENV)/bin/learndrop train --dataset digits --model small_cnn

test: $(STAMP) lint-imports
	$(PY) -m ruff check .
	$(PY) -m mypy
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q --durations=15

test-fast: $(STAMP)
	$(PY) -m ruff check .
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m "not slow"

# real data: Debian's dataset-fashion-mnist (the command says how to install it when missing)
bench: $(STAMP)
	$(VENV)/bin/learndrop bench --preset cpu-fmnist-finetune

lint-imports: $(STAMP)
	# import-linter reads packages from disk: check a plain install of the package
	rm -rf build
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --target build/lint .
	cd build/lint && ../../$(VENV)/bin/lint-imports ../../pyproject.toml

lint: $(STAMP) lint-imports
	$(PY) -m ruff check .
	$(PY) -m mypy

clean:
	rm -rf $(VENV) build dist *.egg-info

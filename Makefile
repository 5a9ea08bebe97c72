# Two commands do all the set-up on a fresh Linux machine:
#   make run    opens Learn&Drop Studio on the embedded default (digits); headless: make demo
#   make test   import contract (core never imports Qt), mypy on core, the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run demo test bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/learndrop studio

demo: $(STAMP)
	$(VENV)/bin/learndrop train --dataset digits --model small_cnn --epochs 6

test: $(STAMP)
	# import-linter reads packages from disk: check a plain install of the package
	rm -rf build
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --target build/lint .
	cd build/lint && ../../$(VENV)/bin/lint-imports ../../pyproject.toml
	$(PY) -m ruff check .
	$(PY) -m mypy
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

# real data: Debian's dataset-fashion-mnist (the command says how to install it when missing)
bench: $(STAMP)
	$(VENV)/bin/learndrop bench --preset cpu-fmnist-finetune

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy

clean:
	rm -rf $(VENV) build dist *.egg-info

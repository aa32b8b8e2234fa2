# `make quickstart` and `make test` do all set-up themselves (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: quickstart test setup lint bench

$(VENV)/.installed: pyproject.toml vision_magic/labextension/build-source.sha256
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

quickstart: $(VENV)/.installed
	$(BIN)/python scripts/run_notebook.py notebooks/quickstart.ipynb

test: $(VENV)/.installed
	bash scripts/install-browser.sh
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check vision_magic fake_openai tests bench scripts
	$(BIN)/ruff format --check vision_magic fake_openai tests bench scripts

bench: $(VENV)/.installed
	$(BIN)/python bench/prepare.py
	$(BIN)/python bench/batch.py
	$(BIN)/python bench/cold_start.py
	$(BIN)/python bench/output_store.py
	$(BIN)/python bench/batch_file.py

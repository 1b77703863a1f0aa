# Everything a newcomer needs: `make demo` and `make test` set up .venv on their own.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo sandbox test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/copper-sandbox serve --port 8765

sandbox: $(STAMP)
	$(BIN)/copper-sandbox serve --port 8765

test: $(STAMP)
	$(BIN)/ruff check sources pipelines tests benchmarks
	$(BIN)/python -m pytest -n 2 tests

lint: $(STAMP)
	$(BIN)/ruff check sources pipelines tests benchmarks
	$(BIN)/ruff format --check sources pipelines tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/sandbox_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache

# Everything a newcomer needs: `make demo` and `make test` set up .venv on their own.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo sandbox test postgres lint bench clean airflow

# Apache Airflow in its own venv (.venv-airflow) with this project installed into it, for
# tests/test_airflow.py (real `airflow dags test` runs) and for trying the DAG by hand. The
# packages that make the warehouse (dlt, duckdb, pyarrow, pendulum, dbt) are pinned to what
# .venv resolved, so the DAG runs the versions the rest of the suite tests; the others are
# left to Airflow's own pins (pinning all of .venv's once made pip backtrack into an sdist
# that no longer builds, when starlette and others had moved past Airflow's). 60-90 s.
AIRFLOW_VERSION := 3.3.2
AIRFLOW_VENV := .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed-$(AIRFLOW_VERSION)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(AIRFLOW_STAMP): $(STAMP) pyproject.toml
	rm -rf $(AIRFLOW_VENV)
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip freeze --exclude-editable \
	  | grep -iE '^(dlt|duckdb|pyarrow|pendulum|dbt-[a-z]+)==' > $(AIRFLOW_VENV)/constraints.txt
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet -c $(AIRFLOW_VENV)/constraints.txt \
	  'apache-airflow==$(AIRFLOW_VERSION)' -e .
	$(AIRFLOW_VENV)/bin/python -m pip check
	touch $(AIRFLOW_STAMP)

airflow: $(AIRFLOW_STAMP)

# a simulated Copper account loaded into demo.duckdb, with example queries
demo: $(STAMP)
	$(BIN)/copper-pipeline demo

# just the simulated account, on http://127.0.0.1:8765/developer_api/v1
sandbox: $(STAMP)
	$(BIN)/copper-sandbox serve --port 8765

# the Postgres tests start their own server from Debian's PostgreSQL (or use
# COPPER_TEST_POSTGRES_URL); install it when it is missing and we may
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "$$COPPER_TEST_POSTGRES_URL" ] || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } || \
	  { echo "The tests need PostgreSQL: apt-get install postgresql, or set COPPER_TEST_POSTGRES_URL"; exit 1; }

test: $(STAMP) $(AIRFLOW_STAMP) postgres
	$(BIN)/ruff check sources pipelines tests benchmarks
	$(BIN)/python -m pytest -n 2 tests

lint: $(STAMP)
	$(BIN)/ruff check sources pipelines tests benchmarks
	$(BIN)/ruff format --check sources pipelines tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/sandbox_throughput.py

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) .pytest_cache

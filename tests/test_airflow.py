"""The Airflow DAG (pipelines/airflow/copper_dag.py) run by real Airflow: `airflow dags test`
from `.venv-airflow` (`make airflow`), against sandboxes over HTTP, then the warehouses checked.

`dags test` runs a whole DAG run in one process, tasks one after another (mapped ones too), with
Airflow's real scheduling decisions: mapping, retries, trigger rules, the run's final state.
About 20 s per run of one small account on 2 idle cores, most of it Airflow's and dlt's start-up.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import psycopg2
import pytest

from copper_sandbox import SandboxAccount

from .warehouse import Loader, assert_warehouse_equals

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_VENV = ROOT / ".venv-airflow"
AIRFLOW = AIRFLOW_VENV / "bin" / "airflow"
DAG_ID = "copper_warehouse"
ENTITIES = ("people", "companies", "leads", "opportunities", "projects", "tasks", "activities")


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory) -> dict[str, str]:
    """An AIRFLOW_HOME with a migrated sqlite database, and the environment to run in it."""
    if not (AIRFLOW.exists() and list(AIRFLOW_VENV.glob(".installed-*"))):
        message = f"no Airflow venv at {AIRFLOW_VENV}: `make airflow` builds it (60 to 90 s)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; under CI `make test` builds it first", pytrace=False)
        pytest.skip(message)
    home = tmp_path_factory.mktemp("airflow_home")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "SOURCES__", "DESTINATION__", "VIRTUAL_ENV"))
    }
    env |= {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "pipelines" / "airflow"),
        # the DAG's retries back off from this: 5 minutes in production, 1 s here
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",
        "DLT_DATA_DIR": str(home / "dlt"),
        "RUNTIME__DLTHUB_TELEMETRY": "false",
    }
    result = subprocess.run(
        [str(AIRFLOW), "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return env


def copper_connection(running, **extra) -> str:
    """An Airflow connection in JSON form (what `AIRFLOW_CONN_COPPER_<ACCOUNT>` holds)."""
    return json.dumps(
        {
            "conn_type": "http",
            "login": running.user_email,
            "password": running.api_key,
            "host": running.base_url,
            "extra": {"requests_per_minute": 100_000, **extra},
        }
    )


def dags_test(env: dict, accounts: list, settings: dict, connections: dict, conf=None):
    """`airflow dags test copper_warehouse` with these Variables and connections."""
    full = dict(env)
    full["AIRFLOW_VAR_COPPER_ACCOUNTS"] = json.dumps(accounts)
    full["AIRFLOW_VAR_COPPER_SETTINGS"] = json.dumps(settings)
    for conn_id, value in connections.items():
        full[f"AIRFLOW_CONN_{conn_id.upper()}"] = value
    cmd = [str(AIRFLOW), "dags", "test", DAG_ID]
    if conf is not None:
        cmd += ["-c", json.dumps(conf)]
    result = subprocess.run(cmd, env=full, capture_output=True, text=True, timeout=900)
    result.output = result.stdout + result.stderr  # type: ignore[attr-defined]
    return result


def tail(result) -> str:
    return result.output[-6000:]


def tries(result, task: str, map_index: int) -> int:
    """How many times `dags test` started one task instance."""
    pattern = rf"\[DAG TEST\] starting task_id={re.escape(task)} map_index={map_index}\b"
    return len(re.findall(pattern, result.output))


def assert_loaded(loader: Loader) -> None:
    for entity in ENTITIES:
        assert_warehouse_equals(loader, entity)


def runs_of(loader: Loader) -> list[dict]:
    """`_copper_runs` summed per run, oldest first."""
    return loader.query(
        "select load_id, sum(rows_extracted) as extracted, sum(rows_loaded) as loaded "
        "from {dataset}._copper_runs group by load_id order by load_id"
    )


def test_one_account_loads_into_duckdb_and_dbt_builds_downstream(airflow_env, serve, tmp_path):
    account = SandboxAccount.generate(seed=71, scale=0.05)
    with serve(account) as running:
        result = dags_test(
            airflow_env,
            accounts=[{"account": "acme", "dbt": True}],
            settings={"duckdb_dir": str(tmp_path / "warehouse"),
                      "pipelines_dir": str(tmp_path / "worker")},
            connections={"copper_acme": copper_connection(running)},
        )  # fmt: skip
        assert result.returncode == 0, tail(result)
        loader = Loader(tmp_path / "warehouse", running, name="copper_acme")
        assert_loaded(loader)
    # the run summary is in the load task's log
    assert re.search(r"Copper account acme loaded:\s*\n\s*entity\s+rows extracted", result.output)
    assert re.search(r"\btotal\s+[\d,]+\s+[\d,]+", result.output)
    assert "dbt build (duckdb):" in result.output and " 0 failed" in result.output
    assert tries(result, "account.load", 0) == 1 and tries(result, "account.dbt_build", 0) == 1
    [run] = runs_of(loader)
    assert run["loaded"] > 0
    opportunities = loader.query("select count(*) as n from copper_reporting.fct_opportunities")
    assert opportunities[0]["n"] == account.count("opportunities")


@pytest.fixture
def pg_datasets(postgres_url):
    """Schema names no other test uses, for two accounts; dropped afterwards."""
    prefix = f"copper_af{uuid.uuid4().hex[:8]}"
    names = {"north": f"{prefix}_north", "south": f"{prefix}_south"}
    yield names
    with contextlib.closing(psycopg2.connect(postgres_url)) as con:
        con.autocommit = True
        with con.cursor() as cur:
            for name in names.values():
                for schema in (name, f"{name}_staging"):
                    cur.execute(f'drop schema if exists "{schema}" cascade')


def postgres_connection(url: str) -> str:
    match = re.match(r"postgresql://([^:]+):([^@]*)@([^:/]+):(\d+)/(.+)", url)
    assert match, url
    user, password, host, port, database = match.groups()
    return json.dumps({"conn_type": "postgres", "login": user, "password": password,
                       "host": host, "port": int(port), "schema": database})  # fmt: skip


def test_two_accounts_mapped_into_postgres_then_resumed_on_a_fresh_worker(
    airflow_env, serve, tmp_path, postgres_url, pg_datasets
):
    """Two Copper accounts, two sandboxes: one mapped task each, a dataset each, one shared
    Postgres. The second DAG run has an empty local dlt dir (another worker) and still loads
    only what changed: the state comes back from the warehouse."""
    import dlt

    north_account = SandboxAccount.generate(seed=72, scale=0.05)
    south_account = SandboxAccount.generate(seed=73, scale=0.08)
    accounts = [{"account": name, "dataset": dataset} for name, dataset in pg_datasets.items()]
    with serve(north_account) as north, serve(south_account) as south:
        connections = {
            "copper_north": copper_connection(north),
            "copper_south": copper_connection(south),
            "copper_warehouse": postgres_connection(postgres_url),
        }
        settings = {"destination": "postgres", "pipelines_dir": str(tmp_path / "worker-1")}
        first = dags_test(airflow_env, accounts, settings, connections)
        assert first.returncode == 0, tail(first)
        loaders = {
            name: Loader(tmp_path, running, name=f"check_{name}", dataset=pg_datasets[name],
                         destination=dlt.destinations.postgres(postgres_url))
            for name, running in (("north", north), ("south", south))
        }  # fmt: skip
        for loader in loaders.values():
            assert_loaded(loader)

        people = north_account.snapshot("people")
        north_account.update("people", people[0]["id"], {"title": "Head of Mapping"})
        south_account.create("companies", {"name": "Second Worker Ltd"})
        requests_before = {"north": north.stats()["requests"], "south": south.stats()["requests"]}
        settings["pipelines_dir"] = str(tmp_path / "worker-2")  # nothing there yet
        second = dags_test(airflow_env, accounts, settings, connections)
        assert second.returncode == 0, tail(second)
        requests = {
            "north": north.stats()["requests"] - requests_before["north"],
            "south": south.stats()["requests"] - requests_before["south"],
        }
        for loader in loaders.values():
            assert_loaded(loader)

    for result in (first, second):
        assert tries(result, "account.load", 0) == 1 and tries(result, "account.load", 1) == 1
        assert tries(result, "account.dbt_build", 0) == 1  # skipped: dbt is off
    assert "Copper account north loaded:" in first.output
    assert "Copper account south loaded:" in first.output
    assert "full load" not in second.output
    for name, loader in loaders.items():
        full, resumed = runs_of(loader)
        # incremental: a few changed records and the activities' look-back, not the account
        assert resumed["extracted"] < full["extracted"] / 4, (name, full, resumed)
        assert requests[name] <= 30, requests


def test_a_transient_failure_is_retried_a_refused_account_fails_at_once(
    airflow_env, serve, tmp_path
):
    """`flaky`'s first request gets a 503 (and its connection allows one attempt): its task
    fails, is retried and loads. `locked_out` has a wrong API key: its task fails once, with the
    one-line error, no retry, and its dbt task never runs; the DAG run fails."""
    flaky_account = SandboxAccount.generate(seed=74, scale=0.05)
    with (
        serve(flaky_account, scripted_faults={1: "503"}) as flaky,
        serve(SandboxAccount.generate(seed=75, scale=0.05)) as locked_out,
    ):
        wrong = json.loads(copper_connection(locked_out))
        wrong["password"] = "not-the-key"
        result = dags_test(
            airflow_env,
            accounts=[{"account": "flaky"}, {"account": "locked_out", "dbt": True}],
            settings={"duckdb_dir": str(tmp_path / "warehouse"),
                      "pipelines_dir": str(tmp_path / "worker")},
            connections={"copper_flaky": copper_connection(flaky, max_attempts=1),
                         "copper_locked_out": json.dumps(wrong)},
        )  # fmt: skip
        assert result.returncode != 0, tail(result)
        assert_loaded(Loader(tmp_path / "warehouse", flaky, name="copper_flaky"))
    assert tries(result, "account.load", 0) == 2, tail(result)
    assert re.search(r"AirflowException: Copper GET /\S+ .*failed after 1 attempts: HTTP 503",
                     result.output), tail(result)  # fmt: skip
    assert "Copper account flaky failed (try 1 of 4, will retry): Copper GET" in result.output
    assert tries(result, "account.load", 1) == 1, tail(result)
    assert tries(result, "account.dbt_build", 1) == 0, tail(result)
    refused = re.findall(r"AirflowFailException: (.*)", result.output)
    assert len(refused) == 1, tail(result)
    assert "HTTP 401" in refused[0] and "not-the-key" not in result.output
    assert f"Copper account locked_out failed: {refused[0]}" in result.output
    assert not os.path.exists(tmp_path / "warehouse" / "copper_locked_out.duckdb")


def test_a_bad_accounts_variable_fails_clearly(airflow_env, tmp_path):
    result = dags_test(airflow_env, accounts=[{"account": "Acme Corp"}], settings={},
                       connections={})  # fmt: skip
    assert result.returncode != 0
    assert "Variable copper_accounts: bad entry" in result.output, tail(result)
    assert tries(result, "accounts", -1) == 1  # no retry for bad configuration
    # a manual run's parameters choose among the configured accounts
    result = dags_test(airflow_env, accounts=[{"account": "acme"}], settings={}, connections={},
                       conf={"accounts": ["globex"]})  # fmt: skip
    assert result.returncode != 0
    assert "accounts not in copper_accounts: globex" in result.output, tail(result)

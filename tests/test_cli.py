"""`copper-pipeline` end to end, as cron runs it: a real subprocess, exit codes, one-line errors."""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from copper_sandbox import SandboxAccount
from copper_sandbox.server import free_port

CLI = str(Path(sys.executable).parent / "copper-pipeline")


def sandbox_env(running, folder: Path) -> dict[str, str]:
    """The settings a `copper-pipeline` process needs for `running`, with dlt's data in
    `folder`/dlt-data."""
    return {
        "DLT_DATA_DIR": str(folder / "dlt-data"),
        "SOURCES__COPPER__API_KEY": running.api_key,
        "SOURCES__COPPER__USER_EMAIL": running.user_email,
        "SOURCES__COPPER__BASE_URL": running.base_url,
    }


def cli(*args: str, cwd: Path, running=None, env: dict | None = None, timeout: float = 300):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    full_env["DLT_DATA_DIR"] = str(cwd / "dlt-data")
    if running is not None:
        full_env |= sandbox_env(running, cwd)
    full_env |= env or {}
    return subprocess.run(
        [CLI, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_run_loads_prints_a_summary_and_records_the_run(serve, tmp_path):
    with serve(SandboxAccount.generate(seed=51, scale=0.05)) as running:
        first = cli("run", cwd=tmp_path, running=running)
        assert first.returncode == 0, first.stderr
        second = cli("run", "--entities", "people,tasks", cwd=tmp_path, running=running)
        assert second.returncode == 0, second.stderr
    for entity in ("people", "companies", "activities", "total"):
        assert entity in first.stdout
    assert "rows extracted" in first.stdout and "429s" in first.stdout
    with duckdb.connect(str(tmp_path / "copper_warehouse.duckdb"), read_only=True) as con:
        runs = con.execute(
            "select entity, rows_loaded, requests, status from copper._copper_runs"
        ).fetchall()
        people = con.execute("select count(*) from copper.people").fetchone()[0]
    assert len(runs) == 7 + 2 and {r[3] for r in runs} == {"loaded"}
    assert ("people", people) in {(r[0], r[1]) for r in runs}
    assert all(r[2] >= 1 for r in runs)


def test_full_refresh_reloads_and_drops_deleted_records(serve, tmp_path):
    account = SandboxAccount.generate(seed=52, scale=0.05)
    with serve(account) as running:
        assert cli("run", "--entities", "tasks", cwd=tmp_path, running=running).returncode == 0
        gone = account.snapshot("tasks")[0]["id"]
        account.delete("tasks", gone)
        result = cli("run", "--entities", "tasks", "--full-refresh", cwd=tmp_path, running=running)
        assert result.returncode == 0, result.stderr
    with duckdb.connect(str(tmp_path / "copper_warehouse.duckdb"), read_only=True) as con:
        ids = {r[0] for r in con.execute("select id from copper.tasks").fetchall()}
    assert gone not in ids and len(ids) == account.count("tasks")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "--entities", "people,unicorns"), "unknown entity unicorns"),
        (("run", "--start-date", "last tuesday"), "bad --start-date"),
        (("run", "--destination", "oracle"), "invalid choice"),
        (("run", "--duckdb-path", "copper.duckdb"), "ambiguous"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, args, message):
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "copper_warehouse.duckdb").exists()


def test_missing_credentials(tmp_path):
    result = cli("run", cwd=tmp_path)
    assert result.returncode != 0
    assert "api_key" in one_line_error(result)
    assert not (tmp_path / "copper_warehouse.duckdb").exists()


def test_unreachable_base_url_fails_quickly_and_clearly(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/developer_api/v1"
    env = {"SOURCES__COPPER__API_KEY": "k", "SOURCES__COPPER__USER_EMAIL": "a@b.c",
           "SOURCES__COPPER__BASE_URL": url}  # fmt: skip
    started = time.monotonic()
    result = cli("run", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "cannot connect" in one_line_error(result)
    assert time.monotonic() - started < 60
    assert not (tmp_path / "copper_warehouse.duckdb").exists()


def test_bad_credentials(serve, tmp_path):
    with serve() as running:
        running.api_key = "wrong-key"
        result = cli("run", cwd=tmp_path, running=running)
    assert result.returncode == 1
    line = one_line_error(result)
    assert "401" in line and "api_key" in line and "wrong-key" not in result.stderr


def test_a_relative_duckdb_path_is_the_current_folders(serve, tmp_path):
    """dlt remembers the folder of a pipeline's first run; a run from another folder with the
    same relative --duckdb-path loads that folder's file, as the lock and the user expect."""
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    shared = {"DLT_DATA_DIR": str(tmp_path / "dlt-data")}
    with serve() as running:
        for folder in ("first", "second"):
            args = ("run", "--duckdb-path", "w.duckdb")
            result = cli(*args, cwd=tmp_path / folder, running=running, env=shared)
            assert result.returncode == 0, result.stderr
    assert (tmp_path / "first" / "w.duckdb").exists()
    assert (tmp_path / "second" / "w.duckdb").exists()


def test_a_second_run_refuses_while_one_holds_the_lock(serve, tmp_path):
    with serve() as running, open(tmp_path / "copper_warehouse.duckdb.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("4242")
        held.flush()
        result = cli("run", cwd=tmp_path, running=running)
    assert result.returncode == 1
    assert "another copper-pipeline run (pid 4242)" in one_line_error(result)


def test_a_duckdb_file_locked_by_another_process(serve, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); c.execute('select 1');"
         " print('ready', flush=True); time.sleep(60)", str(tmp_path / "copper_warehouse.duckdb")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "ready"
        with serve() as running:
            result = cli("run", cwd=tmp_path, running=running)
    finally:
        holder.kill()
    assert result.returncode == 1
    assert "locked by another process" in one_line_error(result)


def test_check_validates_with_one_request(serve, tmp_path):
    with serve() as running:
        result = cli("check", "--entities", "people", cwd=tmp_path, running=running)
        requests = running.stats()["by_path"]
    assert result.returncode == 0, result.stderr
    assert "OK: Copper account" in result.stdout and "people" in result.stdout
    assert requests == {"GET /account": 1}


def test_demo_from_an_empty_directory(tmp_path):
    result = cli("demo", "--scale", "0.2", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "demo.duckdb").exists()
    assert "Open pipeline value by stage" in result.stdout
    assert "Open the data" in result.stdout
    # dbt's artifacts are the pipeline's own, never the shared project's: runs at once on
    # other warehouses (this suite's other workers) cannot read each other's parse
    dbt_dir = tmp_path / ".copper_demo" / "copper_demo" / "dbt"
    assert (dbt_dir / "target" / "run_results.json").exists()


def into_postgres(url: str, dataset: str, **kwargs):
    """`copper-pipeline run` into a Postgres dataset."""
    env = {"DESTINATION__POSTGRES__CREDENTIALS": url}
    return cli("run", "--destination", "postgres", "--dataset", dataset, env=env, **kwargs)


def test_run_into_postgres(serve, tmp_path, postgres_url, pg_dataset):
    import psycopg2

    with serve(SandboxAccount.generate(seed=53, scale=0.05)) as running:
        result = into_postgres(postgres_url, pg_dataset, cwd=tmp_path, running=running)
    assert result.returncode == 0, result.stderr
    with psycopg2.connect(postgres_url) as con, con.cursor() as cur:
        cur.execute(f"select count(*) from {pg_dataset}.people")
        people = cur.fetchone()[0]
        cur.execute(f"select rows_loaded from {pg_dataset}._copper_runs where entity = 'people'")
        assert cur.fetchone()[0] == people > 0


def test_a_second_run_refuses_while_another_holds_the_postgres_dataset(
    serve, tmp_path, postgres_url, pg_dataset
):
    import psycopg2

    holder = psycopg2.connect(postgres_url)
    try:
        with holder.cursor() as cur:
            cur.execute("select pg_advisory_lock(hashtext(%s))", (f"copper-pipeline:{pg_dataset}",))
        with serve() as running:
            result = into_postgres(postgres_url, pg_dataset, cwd=tmp_path, running=running)
    finally:
        holder.close()
    assert result.returncode == 1
    assert "another copper-pipeline run is loading Postgres dataset" in one_line_error(result)


def test_postgres_unreachable(serve, tmp_path):
    url = f"postgresql://postgres:postgres@127.0.0.1:{free_port()}/nowhere"
    with serve() as running:
        result = cli("run", "--destination", "postgres", cwd=tmp_path, running=running,
                     env={"DESTINATION__POSTGRES__CREDENTIALS": url})  # fmt: skip
    assert result.returncode == 1
    assert "Postgres unreachable" in one_line_error(result)


def test_the_readme_mart_queries_run_on_the_demo_database(tmp_path):
    """Every example query the README shows for the marts runs on what `make demo` builds."""
    result = cli("demo", "--scale", "0.2", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    queries = re.findall(r"\| `(select [^`]*)` \|", readme)
    assert len(queries) >= 10
    with duckdb.connect(str(tmp_path / "demo.duckdb"), read_only=True) as con:
        for query in queries:
            assert con.execute(query).fetchall(), query


def test_a_deleted_warehouse_is_reloaded_in_full(serve, tmp_path):
    """dlt keeps cursors on this machine; without the warehouse they would skip old records."""
    account = SandboxAccount.generate(seed=54, scale=0.05)
    with serve(account) as running:
        assert cli("run", cwd=tmp_path, running=running).returncode == 0
        (tmp_path / "copper_warehouse.duckdb").unlink()
        result = cli("run", cwd=tmp_path, running=running)
    assert result.returncode == 0, result.stderr
    assert "full load" in result.stderr
    with duckdb.connect(str(tmp_path / "copper_warehouse.duckdb"), read_only=True) as con:
        people = con.execute("select count(*) from copper.people").fetchone()[0]
    assert people == account.count("people")


def test_a_dropped_postgres_dataset_is_reloaded_in_full(serve, tmp_path, postgres_url, pg_dataset):
    import psycopg2

    account = SandboxAccount.generate(seed=55, scale=0.05)
    with serve(account) as running:
        assert (
            into_postgres(postgres_url, pg_dataset, cwd=tmp_path, running=running).returncode == 0
        )
        with psycopg2.connect(postgres_url) as con, con.cursor() as cur:
            cur.execute(f"drop schema {pg_dataset} cascade")
        result = into_postgres(postgres_url, pg_dataset, cwd=tmp_path, running=running)
    assert result.returncode == 0, result.stderr
    assert "full load" in result.stderr
    with psycopg2.connect(postgres_url) as con, con.cursor() as cur:
        cur.execute(f"select count(*) from {pg_dataset}.people")
        assert cur.fetchone()[0] == account.count("people")

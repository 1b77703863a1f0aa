"""Build the dbt project (`dbt_project/`) on the warehouse a dlt pipeline just loaded.

dbt runs in-process through `dbtRunner`, not dlt's dbt runner: dlt's runner builds its own
virtualenv and writes its own profiles, whereas we want the project's own `profiles.yml`, the
one analysts use (`dbt build --project-dir dbt_project --profiles-dir dbt_project`), with the
same environment variables. Here they are set from the pipeline for the duration of the build.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dlt

TARGETS = ("duckdb", "postgres")  # destination name -> dbt target of the same name
PROBLEMS = ("error", "fail", "warn", "skipped")
FAILURES = ("error", "fail")


def build_dbt(pipeline: dlt.Pipeline, project: Path, log: Callable[[str], None]) -> None:
    """`dbt build` the project on the pipeline's warehouse and dataset.

    Logs a summary and one line per node that warned, failed or was skipped; raises
    RuntimeError naming the first failing node when anything fails.
    """
    from dbt.cli.main import dbtRunner  # imported late: dbt is slow to import

    target = pipeline.destination.destination_name
    if target not in TARGETS:
        raise RuntimeError(f"dbt build failed: destination {target!r} has no dbt target")
    args = ["build", "--project-dir", str(project), "--profiles-dir", str(project)]
    # dbt's target/ (compiled SQL, partial parse) and logs/ per pipeline, not in the shared
    # project: two runs on different warehouses at once would otherwise read each other's
    # parse and test the wrong schemas (the run lock covers only runs of one pipeline)
    if not os.environ.get("DBT_TARGET_PATH"):
        own = Path(pipeline.working_dir) / "dbt"
        args += ["--target-path", str(own / "target"), "--log-path", str(own / "logs")]
    with _environ(dbt_environment(pipeline)):
        try:
            # dbt's own console output off (its log file keeps everything): we log what matters
            outcome = dbtRunner().invoke([*args, "--target", target, "--log-level", "none"])
        finally:
            if target == "duckdb":
                _close_duckdb()
    if outcome.exception is not None:
        raise RuntimeError(f"dbt build failed: {_one_line(outcome.exception)}")
    results = list(outcome.result or [])
    for result in results:
        if str(result.status) in PROBLEMS:
            log(f"dbt: {_node(result)} {result.status}: {_one_line(result.message)}")
    counts = {s: sum(str(r.status) == s for r in results) for s in PROBLEMS}
    models = sum(r.node.resource_type == "model" for r in results)
    log(
        f"dbt build ({target}): {models} models, {len(results) - models} tests, "
        f"{counts['error'] + counts['fail']} failed, {counts['warn']} warnings, "
        f"{counts['skipped']} skipped in {getattr(outcome.result, 'elapsed_time', 0):.1f}s"
    )
    failed = next((r for r in results if str(r.status) in FAILURES), None)
    if failed is not None or not outcome.success:
        detail = f"{_node(failed)}: {_one_line(failed.message)}" if failed else "see dbt's log"
        raise RuntimeError(f"dbt build failed: {detail}")


def dbt_environment(pipeline: dlt.Pipeline) -> dict[str, str]:
    """The variables `dbt_project/profiles.yml` reads, for the pipeline's warehouse."""
    credentials: Any = pipeline.destination_client().config.credentials
    env = {"COPPER_DATASET": pipeline.dataset_name}
    if pipeline.destination.destination_name == "duckdb":
        database = str(credentials.database or "")
        if not database or database.startswith(":"):
            raise RuntimeError(f"dbt build failed: DuckDB {database!r} is not a file")
        env["COPPER_DUCKDB_PATH"] = str(Path(database).resolve())
    else:
        env.update(
            COPPER_PG_HOST=str(credentials.host),
            COPPER_PG_PORT=str(credentials.port or 5432),
            COPPER_PG_USER=str(credentials.username),
            COPPER_PG_PASSWORD=str(credentials.password or ""),
            COPPER_PG_DATABASE=str(credentials.database),
        )
    return env


def _close_duckdb() -> None:
    """Close the database dbt-duckdb keeps open in this process after a build: otherwise the
    file cannot be opened again here with other settings (e.g. read-only, as the demo does)."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with contextlib.suppress(Exception):  # none open
        DuckDBConnectionManager.env().close()
    DuckDBConnectionManager.close_all_connections()


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables, restoring the previous values afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _node(result: Any) -> str:
    """A node as "model fct_leads" or "test unique_stg_people_person_id"."""
    return f"{result.node.resource_type} {result.node.name}"


def _one_line(message: object) -> str:
    """A message on one line, without dbt's "<kind> Error in <node>" header line."""
    lines = [line.strip() for line in str(message or "").splitlines() if line.strip()]
    if len(lines) > 1 and " Error in " in lines[0]:
        lines = lines[1:]
    return " ".join(lines)[:500] if lines else "no message"

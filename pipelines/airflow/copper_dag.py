"""Airflow: load every configured Copper account into the warehouse, one mapped task each.

    copper_warehouse
      accounts                        reads the `copper_accounts` Variable, checks it
      account.load      (mapped)      pipelines.runner.run(): one account, all its entities
      account.dbt_build (mapped)      `dbt build` on that account's dataset (when enabled)

Tested with Apache Airflow 3.3.2 (`make airflow` builds `.venv-airflow`; tests/test_airflow.py
runs `airflow dags test` on this file against the sandbox). The project must be installed in
Airflow's environment (`pip install -e /path/to/copper-warehouse`); point `dags_folder` at this
folder or copy this file into yours.

Configuration (nothing secret lives in this file):

- Airflow Variable `copper_accounts`, JSON, one object per Copper account:
  `[{"account": "acme"}, {"account": "globex", "entities": ["people", "opportunities"]}]`.
  Keys: `account` (required; lowercase letters, digits, `_`), and optionally `dataset`,
  `duckdb_path`, `destination`, `entities`, `start_date`, `dbt`, `pipeline_name`.
- Airflow Variable `copper_settings`, JSON, optional: defaults for every account:
  `destination` ("duckdb" or "postgres"), `duckdb_dir` (where each account's DuckDB file goes,
  default `$AIRFLOW_HOME/copper`), `pipelines_dir` (dlt's local working dir, default
  `~/.dlt/pipelines`), `dbt` (false), `entities`, `start_date`, `postgres_conn_id`.
- Airflow connection `copper_<account>` per account: login = the API key owner's email,
  password = the API key, host = the base URL (optional: Copper's by default), extra = any
  other source setting as JSON, e.g. `{"requests_per_minute": 120}` or `{"access_token": ...}`.
- Postgres: the connection `postgres_conn_id` (default `copper_warehouse`) if it exists, else
  dlt's own configuration on the worker (`DESTINATION__POSTGRES__CREDENTIALS`).

Per account: its own pipeline name (`copper_<account>`), hence its own dlt state, kept in the
warehouse; its own dataset (Postgres: schema `copper_<account>`) or DuckDB file
(`<duckdb_dir>/copper_<account>.duckdb`, schema `copper`), hence its own run lock; and its own
request budget (Copper's 180 requests a minute are per account). So mapped accounts run side by
side on as many workers as the executor offers, and never wait for each other.

Why one task per account, not one per entity group (dlt's PipelineTasksGroup, or several
`run()` calls with `entities=`): the entities of one account share one request budget and one
warehouse. Within one `run()` they are read in parallel under a single limiter that keeps the
account at 180 requests a minute with no 429s. As separate tasks, either they run at once, each
with its own limiter, and together exceed the budget; or they run one after another, when each
task's limiter cannot see the requests the previous task made in the last minute (429s at every
boundary), and they must be serialized anyway: one dlt pipeline state, one DuckDB file (one
writer) or one Postgres dataset, guarded by the runner's lock, which would refuse the second
task rather than queue it. PipelineTasksGroup would also bypass the runner: no lock, no
`_copper_runs` summary, no one-line errors, no lost-warehouse check. What smaller tasks would
buy, smaller retries, the runner already has: the source retries transient HTTP failures with
backoff, and a retried incremental run re-reads only what changed since the last load that
landed. For a very large first load in stages, trigger the DAG with the `entities` parameter.

Failures: a run that fails raises with the runner's one-line message (the entity and the cause),
so it is the task's error in the log and the UI. Bad input and refused credentials fail at once;
anything else (Copper down, the warehouse unreachable or locked by another run) is retried:
`RETRIES` times, exponentially backed off from Airflow's `[core] default_task_retry_delay`
(5 minutes unless configured). One account failing does not stop the others.

On a distributed executor (Celery, Kubernetes) tasks land on any worker, often with an empty
local dir. What must be shared is the destination (Postgres, reachable from every worker), not
dlt's local state: dlt keeps a copy of the state, cursors included, in the warehouse
(`_dlt_pipeline_state`) and restores it when the local dir has none, so a fresh worker resumes
incrementally (tests/test_resume_empty_state.py). A DuckDB file is one machine's: use it with
the LocalExecutor, or route the tasks to the worker that holds the file (a Celery queue).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pendulum
from airflow.sdk import BaseHook, Param, Variable, dag, get_current_context, task, task_group
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    AirflowSkipException,
)

DAG_ID = "copper_warehouse"
SCHEDULE = "*/30 * * * *"  # incremental runs are cheap: a few requests when little changed
RETRIES = 3
# dlt normalizes in one process per task here, not one per core as copper-pipeline does: under
# Airflow dlt starts its workers by spawning (a fresh interpreter each, ~5 s of imports), and
# Copper's API (36,000 records a minute) stays the bottleneck for one normalizing core. Mapped
# accounts share the worker's cores instead. A NORMALIZE__WORKERS set on the worker wins.
NORMALIZE_WORKERS = "1"
ACCOUNT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
ACCOUNT_KEYS = {
    "account", "dataset", "duckdb_path", "destination", "entities", "start_date", "dbt",
    "pipeline_name",
}  # fmt: skip
SETTINGS_KEYS = {
    "destination", "duckdb_dir", "pipelines_dir", "dbt", "entities", "start_date",
    "postgres_conn_id",
}  # fmt: skip
# errors no retry can fix: bad input or configuration (as pipelines/cli.py's usage errors), and
# a 4xx that Copper's client did not retry (refused credentials, a bad base URL)
PERMANENT = ("unknown ", "bad ", "missing configuration", "Copper credentials")
PERMANENT_STATUS = re.compile(r"failed: HTTP 4\d\d\b")

log = logging.getLogger(__name__)


def account_list(raw: Any, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The `copper_accounts` Variable as checked account entries (no secrets: those stay in
    the connections, read by the task that uses them)."""
    if not isinstance(raw, list) or not raw:
        raise AirflowFailException(
            'Variable copper_accounts: set it to a JSON list such as [{"account": "acme"}]'
        )
    unknown = set(settings) - SETTINGS_KEYS
    if unknown:
        raise AirflowFailException(
            f"Variable copper_settings: unknown key(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(SETTINGS_KEYS))}"
        )
    accounts = []
    for entry in raw:
        if isinstance(entry, str):
            entry = {"account": entry}
        name = entry.get("account") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not ACCOUNT_NAME.match(name):
            raise AirflowFailException(
                f"Variable copper_accounts: bad entry {entry!r}: each needs an account name of "
                "lowercase letters, digits and _ (it names the connection copper_<account>)"
            )
        unknown = set(entry) - ACCOUNT_KEYS
        if unknown:
            raise AirflowFailException(
                f"Variable copper_accounts: account {name}: unknown key(s) "
                f"{', '.join(sorted(unknown))}; known: {', '.join(sorted(ACCOUNT_KEYS))}"
            )
        accounts.append(_resolved(entry, settings))
    _refuse_shared(accounts)
    return accounts


def _resolved(entry: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """One account with every default filled in from `copper_settings`."""
    name = entry["account"]
    destination = entry.get("destination", settings.get("destination", "duckdb"))
    # DuckDB: a file per account, schema `copper` as copper-pipeline's; Postgres: one database,
    # a schema per account
    dataset = entry.get("dataset") or ("copper" if destination == "duckdb" else f"copper_{name}")
    duckdb_dir = Path(
        settings.get("duckdb_dir") or Path(os.environ.get("AIRFLOW_HOME", "~/airflow")) / "copper"
    )
    duckdb_path = entry.get("duckdb_path") or str(duckdb_dir / f"copper_{name}.duckdb")
    return {
        "account": name,
        "destination": destination,
        "dataset": dataset,
        "duckdb_path": str(Path(duckdb_path).expanduser()),
        "pipeline_name": entry.get("pipeline_name") or f"copper_{name}",
        "pipelines_dir": settings.get("pipelines_dir"),
        "entities": entry.get("entities", settings.get("entities")),
        "start_date": entry.get("start_date", settings.get("start_date")),
        "dbt": bool(entry.get("dbt", settings.get("dbt", False))),
        "postgres_conn_id": settings.get("postgres_conn_id", "copper_warehouse"),
    }


def _refuse_shared(accounts: list[dict[str, Any]]) -> None:
    """Two accounts in one dataset or one pipeline would share state and lock: refuse."""
    seen: dict[tuple, str] = {}
    for account in accounts:
        where = (
            ("duckdb", account["duckdb_path"], account["dataset"])
            if account["destination"] == "duckdb"
            else ("postgres", account["dataset"])
        )
        for key in (("account", account["account"]), ("pipeline", account["pipeline_name"]),
                    ("warehouse", *where)):  # fmt: skip
            if key in seen:
                raise AirflowFailException(
                    f"Variable copper_accounts: accounts {seen[key]} and {account['account']} "
                    f"share a {key[0]} ({', '.join(map(str, key[1:]))}); give each its own"
                )
            seen[key] = account["account"]


def run_options(account: dict[str, Any], **overrides: Any):
    """The runner's options for one account, with its credentials from its connection."""
    from pipelines.runner import RunOptions

    return RunOptions(
        destination=account["destination"],
        duckdb_path=Path(account["duckdb_path"]),
        dataset=account["dataset"],
        entities=account["entities"] or None,
        start_date=account["start_date"],
        pipeline_name=account["pipeline_name"],
        pipelines_dir=Path(account["pipelines_dir"]) if account["pipelines_dir"] else None,
        source_options=source_options(account["account"]),
        **overrides,
    )


def source_options(account: str) -> dict[str, Any]:
    """copper_source() arguments from the connection `copper_<account>`."""
    from copper import copper_source

    conn_id = f"copper_{account}"
    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise AirflowFailException(
            f"no Airflow connection {conn_id}: add one with login = the API key owner's email, "
            "password = the API key (host = the base URL, optional)"
        ) from None
    options: dict[str, Any] = dict(conn.extra_dejson or {})
    if conn.login:
        options["user_email"] = conn.login
    if conn.password:
        options["api_key"] = conn.password
    if conn.host:
        options["base_url"] = conn.host
    known = set(inspect.signature(copper_source).parameters) - {"entities", "stats"}
    unknown = set(options) - known
    if unknown:
        raise AirflowFailException(
            f"connection {conn_id}: unknown setting(s) in extra: {', '.join(sorted(unknown))}"
        )
    return options


@contextlib.contextmanager
def warehouse_credentials(account: dict[str, Any]) -> Iterator[None]:
    """Postgres credentials from an Airflow connection, as dlt reads them, for one task."""
    name = "DESTINATION__POSTGRES__CREDENTIALS"
    if account["destination"] != "postgres":
        yield
        return
    try:
        conn = BaseHook.get_connection(account["postgres_conn_id"])
    except AirflowNotFoundException:  # dlt's own configuration on this worker
        yield
        return
    url = (
        f"postgresql://{quote(conn.login or '', safe='')}:{quote(conn.password or '', safe='')}"
        f"@{conn.host or 'localhost'}:{conn.port or 5432}/{conn.schema or 'postgres'}"
    )
    saved = os.environ.get(name)
    os.environ[name] = url
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def failure(exc: Exception) -> AirflowException:
    """The runner's one-line message as the task's error: retried unless no retry can help."""
    message = str(exc)
    permanent = message.startswith(PERMANENT) or PERMANENT_STATUS.search(message)
    return (AirflowFailException if permanent else AirflowException)(message)


@dag(
    dag_id=DAG_ID,
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # the next run starts after this one: runs of an account never overlap
    doc_md=__doc__,
    tags=["copper", "dlt"],
    params={
        "accounts": Param([], type="array", description="only these accounts (default: all)"),
        "entities": Param([], type="array", description="only these entities (default: all)"),
        "full_refresh": Param(
            False, type="boolean", description="reload the selected entities from scratch"
        ),
    },
)
def copper_warehouse() -> None:
    @task
    def accounts(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        settings = Variable.get("copper_settings", default={}, deserialize_json=True)
        raw = Variable.get("copper_accounts", default=None, deserialize_json=True)
        chosen = account_list(raw, settings if isinstance(settings, dict) else {})
        only = set((params or {}).get("accounts") or ())
        if only:
            missing = only - {a["account"] for a in chosen}
            if missing:
                raise AirflowFailException(
                    f"accounts not in copper_accounts: {', '.join(sorted(missing))}"
                )
            chosen = [a for a in chosen if a["account"] in only]
        log.info("loading %d Copper account(s): %s", len(chosen),
                 ", ".join(a["account"] for a in chosen))  # fmt: skip
        return chosen

    @task(
        retries=RETRIES,
        retry_exponential_backoff=2.0,
        max_retry_delay=timedelta(hours=1),
        map_index_template="{{ copper_account }}",
    )
    def load(account: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One run of pipelines.runner for one account; its summary table goes to the log."""
        from pipelines.runner import RunError, run

        get_current_context()["copper_account"] = account["account"]  # type: ignore[typeddict-unknown-key]
        os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
        os.environ.setdefault("NORMALIZE__WORKERS", NORMALIZE_WORKERS)
        params = params or {}
        overrides: dict[str, Any] = {"full_refresh": bool(params.get("full_refresh"))}
        if params.get("entities"):
            overrides["entities"] = list(params["entities"])
        options = run_options(account, **overrides)
        log.info(
            "Copper account %s into %s dataset %s%s", account["account"], options.destination,
            options.dataset,
            f" ({options.duckdb_path})" if options.destination == "duckdb" else "",
        )  # fmt: skip
        try:
            with warehouse_credentials(account):
                report = run(options, log=log.info)
        except RunError as exc:
            error = failure(exc)
            ti = get_current_context()["ti"]
            again = not isinstance(error, AirflowFailException) and ti.try_number <= ti.max_tries
            when = f" (try {ti.try_number} of {ti.max_tries + 1}, will retry)" if again else ""
            log.error("Copper account %s failed%s: %s", account["account"], when, exc)
            raise error from None
        log.info("Copper account %s loaded:\n%s", account["account"], report.table())
        return {
            "account": account["account"],
            "load_id": report.load_id,
            "rows_loaded": sum(e.rows_loaded for e in report.entities),
            "requests": report.requests,
            "throttled": report.throttled,
        }

    @task(retries=1, map_index_template="{{ copper_account }}")
    def dbt_build(account: dict[str, Any]) -> None:
        """`dbt build` on the account's dataset, under the same lock as its loads."""
        from pipelines.runner import RunError, explained, make_pipeline, run_dbt, run_lock

        get_current_context()["copper_account"] = account["account"]  # type: ignore[typeddict-unknown-key]
        if not account["dbt"]:
            raise AirflowSkipException(f"dbt is off for account {account['account']}")
        options = run_options(account)
        try:
            with warehouse_credentials(account), explained(options):
                pipeline = make_pipeline(options)
                with run_lock(pipeline, options):
                    run_dbt(pipeline, log.info)
        except RunError as exc:
            message = str(exc)
            raise (AirflowFailException if "dbt build failed" in message else AirflowException)(
                message
            ) from None

    @task_group(group_id="account")
    def copper_account(account: dict[str, Any]) -> None:
        load(account) >> dbt_build(account)

    copper_account.expand(account=accounts())


copper_warehouse()

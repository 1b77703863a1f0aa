"""One run of the Copper pipeline as cron runs it: locked, reported, with one-line errors.

Used by the command line (`pipelines/cli.py`); importable for schedulers such as Airflow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from errno import EACCES, ENOSPC, EPERM, EROFS
from pathlib import Path
from typing import Any

import dlt
import pendulum
from dlt.common.normalizers.naming.snake_case import NamingConvention

from copper import WEBHOOK_SEQ, ClientStats, CopperError, copper_source, mark_deletions
from copper.extract import DELETES, RECONCILE
from copper.settings import ENTITIES, ENTITY_BY_NAME
from pipelines.progress import progress
from pipelines.tuning import tuned_for_throughput
from pipelines.webhook_inbox import Inbox, WebhookEvent

PIPELINE_NAME = "copper"
# not copper.duckdb: DuckDB names the catalog after the file, and a catalog named like the
# `copper` schema makes every `copper.<table>` reference ambiguous (dlt itself fails on it)
DEFAULT_DUCKDB = "copper_warehouse.duckdb"
RUNS_TABLE = "_copper_runs"
DESTINATIONS = ("duckdb", "postgres")
# DuckDB loads parquet (typed, read by column name) many times faster than dlt's default
# insert_values, in a fraction of the memory (benchmarks/cpu_path.py). Not jsonl, though it is
# as fast: DuckDB infers a JSON file's keys from a sample and fails the load on a key it did
# not see, which a sparse field far down a large load triggers. Postgres keeps insert_values,
# named, not left to dlt: for Arrow tables from the source dlt would pick csv, whose COPY
# turns "" into NULL (tests/test_postgres.py).
LOADER_FORMAT = {"duckdb": "parquet", "postgres": "insert_values"}
_NAMING = NamingConvention()  # dlt's default: how it names schemas


class RunError(Exception):
    """A run that failed; the message is one line a person understands."""


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (Ctrl-C, SIGTERM); what it loaded stays loaded."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


@dataclass
class RunOptions:
    destination: str = "duckdb"
    duckdb_path: Path = Path(DEFAULT_DUCKDB)
    dataset: str = "copper"
    entities: list[str] | None = None
    start_date: str | None = None
    full_refresh: bool = False
    dbt: bool = False
    pipeline_name: str = PIPELINE_NAME
    pipelines_dir: Path | None = None  # default: dlt's (~/.dlt/pipelines)
    source_options: dict[str, Any] = field(default_factory=dict)  # base_url, api_key, ...
    progress_every: float = 10.0
    # None: the source's setting (sources.copper.deletes etc., or its default)
    deletes: str | None = None  # soft | hard
    reconcile: str | None = None  # counts | full | off
    reconcile_every_hours: float | None = None
    webhooks: bool = True  # apply events from the webhook inbox, when there is one

    def copper_options(self) -> dict[str, Any]:
        """What the source gets: `source_options` and the settings given here."""
        given = {
            "deletes": self.deletes,
            "reconcile": self.reconcile,
            "reconcile_every_hours": self.reconcile_every_hours,
        }
        return {**self.source_options, **{k: v for k, v in given.items() if v is not None}}

    def validate(self) -> None:
        """Refuse bad input before anything is touched."""
        if self.destination not in DESTINATIONS:
            raise RunError(
                f"unknown destination {self.destination!r}; choose {' or '.join(DESTINATIONS)}"
            )
        unknown = sorted(set(self.entities or ()) - set(ENTITY_BY_NAME))
        if unknown:
            raise RunError(
                f"unknown entity {', '.join(unknown)}; choose from {', '.join(ENTITY_BY_NAME)}"
            )
        if _NAMING.normalize_identifier(self.dataset or "_") != self.dataset:
            raise RunError(
                f"bad --dataset {self.dataset!r}: dlt would load into "
                f"{_NAMING.normalize_identifier(self.dataset or '_')!r}; use lowercase letters, "
                "digits and _ (such as copper)"
            )
        if self.destination == "duckdb" and Path(self.duckdb_path).stem == self.dataset:
            raise RunError(
                f"bad --duckdb-path {self.duckdb_path}: DuckDB would name its catalog "
                f"{self.dataset!r} like the dataset, making `{self.dataset}.<table>` ambiguous; "
                "choose another file name or --dataset"
            )
        if self.deletes is not None and self.deletes not in DELETES:
            raise RunError(f"bad deletes {self.deletes!r}: choose {' or '.join(DELETES)}")
        if self.reconcile is not None and self.reconcile not in RECONCILE:
            raise RunError(f"bad reconcile {self.reconcile!r}: choose {', '.join(RECONCILE)}")
        if self.reconcile_every_hours is not None and not self.reconcile_every_hours >= 0:
            raise RunError(
                f"bad reconcile_every_hours {self.reconcile_every_hours!r}: 0 (every run) or more"
            )
        if self.start_date:
            try:
                pendulum.parse(self.start_date)
            except (ValueError, pendulum.parsing.exceptions.ParserError):
                raise RunError(
                    f"bad --start-date {self.start_date!r}: use an ISO date such as 2024-01-31"
                ) from None


@dataclass
class EntityReport:
    entity: str
    rows_extracted: int
    rows_loaded: int
    requests: int
    throttled: int
    seconds: float


@dataclass
class RunReport:
    load_id: str | None
    started_at: datetime
    finished_at: datetime
    entities: list[EntityReport]
    requests: int
    throttled: int
    budget_waits: int
    budget_wait_seconds: float

    def table(self) -> str:
        header = ("entity", "rows extracted", "rows loaded", "requests", "429s", "seconds")
        rows = [
            (e.entity, f"{e.rows_extracted:,}", f"{e.rows_loaded:,}", f"{e.requests:,}",
             f"{e.throttled:,}", f"{e.seconds:.1f}")
            for e in self.entities
        ]  # fmt: skip
        total_seconds = (self.finished_at - self.started_at).total_seconds()
        rows.append(
            ("total", f"{sum(e.rows_extracted for e in self.entities):,}",
             f"{sum(e.rows_loaded for e in self.entities):,}", f"{self.requests:,}",
             f"{self.throttled:,}", f"{total_seconds:.1f}")
        )  # fmt: skip
        widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
        lines = [
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
            for r in (header, *rows)
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def rows(self, status: str, options: RunOptions) -> list[dict]:
        """The `_copper_runs` rows of this run: one per entity."""
        return [
            {
                "load_id": self.load_id,
                "run_started_at": self.started_at,
                "run_finished_at": self.finished_at,
                "entity": e.entity,
                "rows_extracted": e.rows_extracted,
                "rows_loaded": e.rows_loaded,
                "requests": e.requests,
                "throttled": e.throttled,
                "seconds": round(e.seconds, 3),
                "status": status,
                "destination": options.destination,
            }
            for e in self.entities
        ]


def make_pipeline(options: RunOptions) -> dlt.Pipeline:
    if options.destination == "duckdb":
        # absolute: dlt resolves a relative path against the folder of the pipeline's first run
        destination: Any = dlt.destinations.duckdb(str(Path(options.duckdb_path).absolute()))
    else:
        destination = dlt.destinations.postgres()
    return dlt.pipeline(
        pipeline_name=options.pipeline_name,
        pipelines_dir=str(options.pipelines_dir) if options.pipelines_dir else None,
        destination=destination,
        dataset_name=options.dataset,
    )


def run(options: RunOptions, log: Any = None) -> RunReport:
    """Load Copper once. Raises RunError with a one-line message on any failure."""
    options.validate()
    with tuned_for_throughput():
        return _run(options, log)


def _run(options: RunOptions, log: Any = None) -> RunReport:
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    pipeline = make_pipeline(options)
    selected = options.entities or [e.name for e in ENTITIES]
    stats = ClientStats()
    started = datetime.now(UTC)
    with explained(options, pipeline.pipelines_dir), run_lock(pipeline, options):
        if _warehouse_lost(pipeline, options):
            log(
                "the warehouse has no Copper data but this machine remembers cursors from "
                "earlier runs: forgetting them, so this run is a full load"
            )
            pipeline = pipeline.drop()
        _finish_interrupted_load(pipeline, log)
        mark_deletions(pipeline)  # of a run that died between its load and this step
        events = _webhook_events(pipeline, options, selected)
        source_options = options.copper_options()
        if options.full_refresh:  # every table is reloaded whole: nothing to reconcile
            source_options["reconcile"] = "off"
        source = copper_source(
            entities=selected, start_date=options.start_date, stats=stats,
            webhook_events=[_event_row(e) for e in events], **source_options,
        )  # fmt: skip
        with progress(stats, selected, log, options.progress_every):
            info = pipeline.run(
                source,
                refresh="drop_resources" if options.full_refresh else None,
                loader_file_format=LOADER_FORMAT.get(options.destination),
            )
        info.raise_on_failed_jobs()
        mark_deletions(pipeline)
        if events:
            with _inbox(options) as inbox:
                inbox.prune(max(e.seq for e in events))
        report = _report(pipeline, stats, selected, started)
        pipeline.run(
            dlt.resource(report.rows("loaded", options), name=RUNS_TABLE,
                         write_disposition="append",
                         columns={"run_started_at": {"data_type": "timestamp"},
                                  "run_finished_at": {"data_type": "timestamp"}}),
        )  # fmt: skip
        if options.dbt:
            run_dbt(pipeline, log)
    return report


def _finish_interrupted_load(pipeline: dlt.Pipeline, log: Any) -> None:
    """Load what a run that died after extracting left behind (its cursors travel with it),
    before extracting anew: dlt's `run` would otherwise load only that and stop."""
    if not pipeline.has_pending_data:
        return
    log("finishing the load of an interrupted run first (its data is already extracted)")
    if pipeline.list_extracted_load_packages():
        pipeline.normalize()  # in the file format chosen when they were extracted
    pipeline.load().raise_on_failed_jobs()


def _inbox(options: RunOptions) -> Inbox:
    return Inbox.for_warehouse(options.destination, Path(options.duckdb_path), options.dataset)


def _webhook_events(
    pipeline: dlt.Pipeline, options: RunOptions, selected: list[str]
) -> list[WebhookEvent]:
    """Inbox events newer than the last one applied. Only a run of every entity applies
    them: the applied mark is one number for all entities."""
    if not options.webhooks or set(selected) != set(ENTITY_BY_NAME):
        return []
    with _inbox(options) as inbox:
        if not inbox.exists():
            return []
        applied = pipeline.state.get("sources", {}).get("copper", {}).get(WEBHOOK_SEQ, 0)
        return inbox.pending(after=applied)


def _event_row(event: WebhookEvent) -> dict[str, Any]:
    row = dataclasses.asdict(event)
    row["ids"] = list(event.ids)
    return row


def _warehouse_lost(pipeline: dlt.Pipeline, options: RunOptions) -> bool:
    """Local dlt state with cursors, but a warehouse without the data (a deleted DuckDB file,
    a dropped schema): resuming from those cursors would silently skip every older record."""
    if not pipeline.state.get("sources"):
        return False
    if options.destination == "duckdb":
        return not Path(options.duckdb_path).exists()
    with pipeline.sql_client() as client:
        # not just the schema: the webhook receiver creates it for its inbox table
        if not client.has_dataset():
            return True
        version = client.make_qualified_table_name(pipeline.default_schema.version_table_name)
        try:
            client.execute_sql(f"select 1 from {version} limit 1")
        except Exception:
            return True
        return False


def _report(
    pipeline: dlt.Pipeline, stats: ClientStats, selected: list[str], started: datetime
) -> RunReport:
    trace = pipeline.last_trace
    counts: dict[str, int] = {}
    normalize = trace.last_normalize_info if trace else None
    if normalize is not None:
        counts = normalize.row_counts
    load_ids = (
        pipeline.last_trace.last_load_info.loads_ids if trace and trace.last_load_info else []
    )
    entities = [
        EntityReport(
            name,
            stats.entity(name).extracted,
            counts.get(name, 0),
            stats.entity(name).requests,
            stats.entity(name).throttled,
            stats.entity(name).seconds,
        )
        for name in selected
    ]
    waits, waited = stats.budget_waits
    return RunReport(
        load_id=load_ids[-1] if load_ids else None,
        started_at=started,
        finished_at=datetime.now(UTC),
        entities=entities,
        requests=stats.requests,
        throttled=stats.throttled,
        budget_waits=waits,
        budget_wait_seconds=waited,
    )


@contextlib.contextmanager
def run_lock(pipeline: dlt.Pipeline, options: RunOptions) -> Iterator[None]:
    """One run at a time per warehouse: a file lock beside a DuckDB file, an advisory lock in
    Postgres (held by a connection for the whole run). A second run refuses, clearly."""
    if options.destination == "duckdb":
        path = Path(f"{options.duckdb_path}.lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        first = not path.exists()
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                raise RunError(
                    f"another copper-pipeline run (pid {holder}) is loading "
                    f"{options.duckdb_path}; try again when it has finished"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                if first and not Path(options.duckdb_path).exists():
                    path.unlink()  # a run refused before it made a warehouse leaves no file
        return
    with pipeline.sql_client() as client:
        key = f"copper-pipeline:{options.dataset}"
        row = client.execute_sql("select pg_try_advisory_lock(hashtext(%s))", key)
        if not row or not row[0][0]:
            raise RunError(
                f"another copper-pipeline run is loading Postgres dataset {options.dataset!r}; "
                "try again when it has finished"
            )
        try:
            yield
        finally:
            client.execute_sql("select pg_advisory_unlock(hashtext(%s))", key)


@contextlib.contextmanager
def explained(options: RunOptions, pipelines_dir: str | None = None) -> Iterator[None]:
    """Turn whatever went wrong into RunError with one line naming the cause."""
    try:
        yield
    except RunError:
        raise
    except KeyboardInterrupt as exc:
        raise _interrupted(exc) from None
    except Exception as exc:
        stop = next((c for c in _causes(exc) if isinstance(c, KeyboardInterrupt)), None)
        if stop is not None:  # dlt wraps a signal in normalize or load into its step error
            raise _interrupted(stop) from None
        raise RunError(explain(exc, options, pipelines_dir)) from exc


def _interrupted(exc: KeyboardInterrupt) -> Interrupted:
    if isinstance(exc, Interrupted):
        return exc
    code = getattr(exc, "signal_code", signal.SIGINT)  # dlt's SignalReceivedException
    return Interrupted(signal.Signals(code).name)


def explain(exc: BaseException, options: RunOptions, pipelines_dir: str | None = None) -> str:
    chain = list(_causes(exc))
    for cause in chain:
        if isinstance(cause, CopperError | RunError):
            return str(cause)
    for cause in chain:
        name = type(cause).__name__
        text = str(cause).strip().splitlines()[0] if str(cause).strip() else name
        if name == "IOException" and "lock" in text.lower():
            return (
                f"DuckDB file {options.duckdb_path} is locked by another process "
                f"(close other connections to it, e.g. a notebook or the duckdb CLI): {text}"
            )
        if name == "OperationalError" or "could not connect" in text:
            return f"Postgres unreachable: {text}"
        if name == "ConfigFieldMissingException":
            return f"missing configuration: {text}"
        if name == "ConfigValueCannotBeCoercedException":
            field, value = cause.field_name, cause.field_value  # type: ignore[attr-defined]
            hint = getattr(cause.hint, "__name__", cause.hint)  # type: ignore[attr-defined]
            return f"bad setting {field} {value!r}: cannot be read as {hint}"
        if isinstance(cause, OSError) and cause.errno in (EACCES, EPERM, EROFS):
            return f"cannot write {cause.filename}: {cause.strerror}"
        if isinstance(cause, OSError) and cause.errno == ENOSPC:
            where = cause.filename or pipelines_dir or "a file"
            return f"disk full: cannot write {where}: No space left on device"
        if "no space left on device" in text.lower():  # DuckDB's, naming its file
            return f"disk full: {text}"
        if isinstance(cause, ValueError) and "dlt" not in type(cause).__module__:
            return text
    root = chain[-1]
    return (
        f"{type(root).__name__}: {str(root).strip().splitlines()[0] if str(root).strip() else ''}"
    )


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for nxt in (getattr(current, "exception", None), current.__cause__, current.__context__):
            if isinstance(nxt, BaseException):
                stack.append(nxt)


def run_dbt(pipeline: dlt.Pipeline, log: Any) -> None:
    project = Path(__file__).resolve().parents[1] / "dbt_project"
    if not (project / "dbt_project.yml").exists():
        log("dbt: no dbt project yet (dbt_project/dbt_project.yml); skipped")
        return
    from .reporting import build_dbt

    build_dbt(pipeline, project, log)

"""A dlt source for Copper CRM: every entity, incremental, exact past the 100k cap.

    pipeline = dlt.pipeline("copper", destination="duckdb", dataset_name="copper")
    pipeline.run(copper_source())

Configuration (dlt conventions, e.g. `SOURCES__COPPER__API_KEY`): `api_key` and `user_email`
(or `access_token`), `base_url`, `start_date`, `requests_per_minute`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dlt
import pendulum
from dlt.common.data_types import coerce_value, py_type_to_sc_type
from dlt.common.storages.load_package import load_package_state
from dlt.common.typing import TSecretStrValue
from dlt.extract.items import DataItemWithMeta
from dlt.sources import DltResource

from .arrow import CHILD_DLT_COLUMNS, ROOT_DLT_COLUMNS, ArrowPages, QuietArrowHints
from .arrow_processes import AUTO, ArrowBuilder
from .client import ClientStats, CopperAuthError, CopperClient, CopperError, Credentials
from .custom_fields import CustomFieldPivot, column_names
from .extract import (
    DELETES,
    RECONCILE,
    RECONCILE_EVERY_HOURS,
    EntityExtraction,
    RunSettings,
    with_deletions_table,
)
from .reconcile import KnownRows
from .settings import (
    BASE_URL,
    ENTITIES,
    ENTITY_BY_NAME,
    ENTITY_BY_WEBHOOK_TYPE,
    LATEST,
    MONEY,
    PAGE_SIZE,
    REFERENCES,
    REQUESTS_PER_MINUTE,
    Entity,
    Reference,
)
from .warehouse import DELETED_AT, live_rows, mark_deletions
from .windows import WindowError

__all__ = [
    "WEBHOOK_SEQ",
    "ClientStats",
    "CopperAuthError",
    "CopperClient",
    "CopperError",
    "WindowError",
    "copper_source",
    "mark_deletions",
]

log = logging.getLogger("copper")
STATE_COLUMNS = "custom_field_columns"
WEBHOOK_SEQ = "webhook_seq"  # source state: the last inbox event applied
WEBHOOK_EVENTS = "_copper_webhook_events"
_EPOCHS = range(-62_135_596_800, LATEST + 1)  # epoch seconds of years 1-9999


@dlt.source(name="copper", max_table_nesting=1)
def copper_source(
    api_key: TSecretStrValue | None = None,
    user_email: str | None = None,
    access_token: TSecretStrValue | None = None,
    base_url: str = BASE_URL,
    start_date: str | None = None,
    requests_per_minute: int = REQUESTS_PER_MINUTE,
    rate_limit_window: float = 60.0,
    activity_lookback_days: int = 30,
    max_window_records: int = 95_000,
    window_workers: int = 8,
    min_split_records: int = 1_600,
    entities: Sequence[str] | None = None,
    request_timeout: float = 30.0,
    max_attempts: int = 8,
    max_backoff: float = 60.0,
    deletes: str = "soft",
    reconcile: str = "counts",
    reconcile_every_hours: float = RECONCILE_EVERY_HOURS,
    webhook_events: Sequence[Mapping[str, Any]] = (),
    stats: ClientStats | None = None,
    arrow_tables: bool = True,
    arrow_processes: int = AUTO,
) -> Iterator[DltResource]:
    """Every Copper entity (merged on id) and the reference tables (replaced each run).

    Args:
        start_date: ISO date; records modified before it are not loaded on the first run.
        requests_per_minute: the account's budget, shared by every resource of the run.
        rate_limit_window: seconds of the rolling window Copper counts requests in (60);
            the budget is `requests_per_minute * rate_limit_window / 60` per window.
        activity_lookback_days: activities dated this far before the cursor are checked
            every run, because users backdate activities: one count, walked when it differs,
            and walked whole every `reconcile_every_hours` (edits change no count).
        max_window_records: a time window is split until Copper counts at most this many
            matches in it (always below Copper's 100,000 cap); windows are read in parallel.
        window_workers: walks of one entity read at the same time (8: when one entity is
            left, enough requests in flight to keep the budget full, at Copper's latency).
        min_split_records: an idle walker takes half of a running walk with at least this many
            rows left when that walk would outlast the budget, or when fewer walks run than
            the budget needs in flight (about one extra request each).
        entities: restrict to these entity names (reference tables are always included).
        request_timeout: seconds before a request that got no answer is retried.
        max_attempts: tries per request before the run fails (transient errors only).
        max_backoff: the longest wait between two tries, in seconds.
        deletes: "soft" sets `_copper_deleted_at` on rows Copper no longer has (and logs them
            in `_copper_deletions`); "hard" deletes them (dlt's `hard_delete` hint).
        reconcile: how deletions are found: "counts" compares Copper's counts per range of
            creation dates with the warehouse and re-lists only ranges that differ; "full"
            re-lists every record; "off" never looks.
        reconcile_every_hours: reconcile an entity only if its last reconciliation is at
            least this old (0: every run); also how often activities' lookback is re-read.
        webhook_events: Copper webhook notifications received since the last run (dicts
            with `type`, `event`, `ids`, `seq`...): the ids are re-read first, so deletes
            and updates land without waiting for the reconciliation.
        stats: a `ClientStats` to fill with requests, 429s and records per entity, for
            callers that report on the run (the `copper-pipeline` summary does).
        arrow_tables: hand dlt each page of an entity as Arrow tables (the entity's rows and
            its child tables, built as dlt's normalizer builds them; `copper/arrow.py`), which
            dlt loads without normalizing row by row; records that are not plain go as dicts.
            False: every record as a dict, through dlt's normalizer (the same warehouse,
            slower; `tests/test_cpu_path_equal.py` compares the two).
        arrow_processes: worker processes that build the Arrow tables (and pivot custom
            fields), beside the process that reads Copper and writes dlt's files: -1 (the
            default) for the cores the machine has to spare (at most 2), used once an entity
            has handed over 2,000 records; 0 for none; N for N from the first record.
    """
    initial = _start_timestamp(start_date)
    _check_settings(
        base_url=base_url,
        numbers={
            "requests_per_minute": (requests_per_minute, 1),
            "rate_limit_window": (rate_limit_window, 0.001),
            "activity_lookback_days": (activity_lookback_days, 0),
            "max_window_records": (max_window_records, 1),
            "window_workers": (window_workers, 1),
            "min_split_records": (min_split_records, 1),
            "request_timeout": (request_timeout, 0.001),
            "max_attempts": (max_attempts, 1),
            "max_backoff": (max_backoff, 0),
            "reconcile_every_hours": (reconcile_every_hours, 0),
            "arrow_processes": (arrow_processes, AUTO),
        },
        choices={"deletes": (deletes, DELETES), "reconcile": (reconcile, RECONCILE)},
    )
    unknown = set(entities or ()) - set(ENTITY_BY_NAME)
    if unknown:
        raise ValueError(
            f"unknown Copper entit{'y' if len(unknown) == 1 else 'ies'} {sorted(unknown)}; "
            f"choose from {', '.join(ENTITY_BY_NAME)}"
        )
    client = CopperClient(
        Credentials(api_key=api_key, user_email=user_email, access_token=access_token),
        base_url,
        requests_per_minute=requests_per_minute,
        rate_window=rate_limit_window,
        timeout=request_timeout,
        max_attempts=max_attempts,
        max_backoff=max_backoff,
        stats=stats,
    )
    run_start = int(time.time())
    definitions = client.get("/custom_field_definitions", context="custom field definitions")
    frozen = dlt.current.source_state().get(STATE_COLUMNS, {})
    standard = {c for e in ENTITIES for c in (*e.columns, *e.timestamps, *e.money)}
    columns = column_names(definitions, frozen, reserved=standard)  # never shadow a field
    pivot = CustomFieldPivot(definitions, columns)

    settings = RunSettings(
        initial=initial,
        run_start=run_start,
        max_window_records=max_window_records,
        window_workers=window_workers,
        min_split_records=min_split_records,
        deletes=deletes,
        reconcile=reconcile,
        reconcile_every_hours=reconcile_every_hours,
    )
    named = _webhook_ids(webhook_events)
    selected = [e for e in ENTITIES if not entities or e.name in entities]
    builder = None
    if arrow_tables:
        spool, import_files = _arrow_files()
        builder = ArrowBuilder(pivot, arrow_processes, client.stats, spool, import_files)
        _quiet_arrow_hints()
    for entity in selected:
        ids = named.get(entity.name, set())
        extraction = EntityExtraction(
            entity,
            client,
            settings,
            lookback_days=activity_lookback_days if entity.lookback_days else 0,
            expected=_warehouse_rows(entity) if reconcile != "off" or ids else KnownRows.empty(),
            webhook_ids=ids,
            light_pages=builder is not None and builder.processes > 0,
        )
        yield _entity_resource(entity, extraction, pivot, deletes, builder)
    if webhook_events:
        yield _webhook_events_resource(webhook_events)
    for reference in REFERENCES:
        if reference.name == "custom_field_definitions":  # already read, for the pivot
            yield dlt.resource(definitions, name=reference.name, **_reference_hints(reference))
        else:
            yield _reference_resource(reference, client)
    yield _mapping_resource(pivot)


def _quiet_arrow_hints() -> None:
    """Once per process: dlt warns of every Arrow page that json columns are text in Arrow."""
    dlt_logger = logging.getLogger("dlt")
    if not any(isinstance(f, QuietArrowHints) for f in dlt_logger.filters):
        dlt_logger.addFilter(QuietArrowHints([e.name for e in ENTITIES]))


def _check_settings(
    base_url: str,
    numbers: dict[str, tuple[float, float]],
    choices: dict[str, tuple[str, tuple[str, ...]]],
) -> None:
    """Refuse a bad setting, before any request, with a message naming it ("bad ...")."""
    url = urlsplit(str(base_url))
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(
            f"bad sources.copper.base_url {base_url!r}: use an http(s) URL such as {BASE_URL}"
        )
    for name, (value, least) in numbers.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= least:
            at_least = "positive" if 0 < least < 1 else f"{least} or more"
            raise ValueError(f"bad sources.copper.{name} {value!r}: use a number, {at_least}")
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise ValueError(f"bad sources.copper.{name} {value!r}: choose {', '.join(allowed)}")


def _arrow_files() -> tuple[Path | None, bool]:
    """Where worker processes put their files (beside the active pipeline's, so dlt imports a
    file as a hard link), and whether the destination loads Parquet files dlt did not write
    (DuckDB: by column name)."""
    try:
        pipeline = dlt.current.pipeline()
    except Exception:  # the source used on its own
        return None, False
    destination = pipeline.destination
    duckdb = destination is not None and destination.destination_type.endswith(".duckdb")
    return Path(pipeline.working_dir), duckdb


def _warehouse_rows(entity: Entity) -> KnownRows:
    """The live rows the active pipeline's warehouse holds, to reconcile against."""
    try:
        pipeline = dlt.current.pipeline()
    except Exception:  # no pipeline (the source used on its own): nothing to compare with
        return KnownRows.empty()
    if pipeline.destination is None:
        return KnownRows.empty()
    return live_rows(pipeline, entity)


def _webhook_ids(events: Sequence[Mapping[str, Any]]) -> dict[str, set[int]]:
    """Ids named by webhook notifications, per entity."""
    named: dict[str, set[int]] = {}
    for event in events:
        entity = ENTITY_BY_WEBHOOK_TYPE.get(str(event.get("type")))
        ids = [i for i in event.get("ids") or () if isinstance(i, int)]
        if entity is not None:
            named.setdefault(entity.name, set()).update(ids)
    return named


def _webhook_events_resource(events: Sequence[Mapping[str, Any]]) -> DltResource:
    """The notifications applied by this run, kept in `_copper_webhook_events`; the highest
    `seq` is saved with the load, so a run reads only newer events from the inbox."""

    def rows() -> Iterator[list[dict]]:
        state = dlt.current.source_state()
        seqs = [e["seq"] for e in events if isinstance(e.get("seq"), int)]
        if seqs:
            state[WEBHOOK_SEQ] = max(max(seqs), state.get(WEBHOOK_SEQ, 0))
        yield [{k: v for k, v in e.items() if v is not None} for e in events]

    return dlt.resource(
        rows,
        name=WEBHOOK_EVENTS,
        write_disposition="append",
        columns={
            "seq": {"data_type": "bigint"},
            "received_at": {"data_type": "timestamp"},
            "ids": {"data_type": "json"},
            "updated_attributes": {"data_type": "json"},
        },
    )


def _mapping_resource(pivot: CustomFieldPivot) -> DltResource:
    """The id -> column -> label table. Like the entity resources, it freezes the column names
    in source state, saved with this load, so a renamed field keeps its column ever after."""

    def mapping() -> Iterator[list[dict]]:
        dlt.current.source_state()[STATE_COLUMNS] = pivot.columns
        yield pivot.mapping_rows()

    return dlt.resource(mapping, name="custom_field_mapping", write_disposition="replace")


def _start_timestamp(start_date: str | None) -> int:
    if not start_date:
        return 0
    try:
        return int(pendulum.parse(str(start_date), tz="UTC").timestamp())  # type: ignore[union-attr]
    except (ValueError, pendulum.parsing.exceptions.ParserError) as exc:
        raise ValueError(
            f"start_date must be an ISO date like 2024-01-31, got {start_date!r}"
        ) from exc


def _entity_resource(
    entity: Entity,
    extraction: EntityExtraction,
    pivot: CustomFieldPivot,
    deletes: str,
    builder: ArrowBuilder | None,
) -> DltResource:
    """An entity's resource: its pages as Arrow tables built by `builder`, or (None) as
    dicts for dlt's normalizer, custom fields pivoted either way."""
    columns: dict[str, Any] = {c: {"data_type": t} for c, t in entity.columns.items()}
    columns.update({c: {"data_type": "timestamp"} for c in entity.timestamps})
    columns.update({c: dict(MONEY) for c in entity.money})
    columns[entity.cursor] = {"data_type": "timestamp", "dedup_sort": "desc"}
    if entity.cursor != "date_modified":
        columns["date_modified"] = {"data_type": "timestamp", "dedup_sort": "desc"}
        columns[entity.cursor] = {"data_type": "timestamp"}
    if entity.has_custom_fields:
        columns["custom_fields"] = {"data_type": "json"}
        columns.update(pivot.column_hints(entity.record_type))
    columns[DELETED_AT] = {"data_type": "timestamp", "nullable": True}
    if deletes == "hard":
        columns[DELETED_AT]["hard_delete"] = True
    prepare = _dlt_row(entity.timestamps)
    if builder is not None:
        columns.update(ROOT_DLT_COLUMNS)  # dlt's own columns, as its normalizer adds them
        arrow = ArrowPages(entity.name, columns)
        builder.register(entity.name, arrow, entity.record_type if entity.has_custom_fields
                         else None)  # fmt: skip

    def records() -> Iterator[Any]:
        if entity.has_custom_fields:
            dlt.current.source_state()[STATE_COLUMNS] = pivot.columns
        pages = extraction.pages(dlt.current.resource_state(entity.name))
        yield from pages if builder is None else _as_arrow(pages, builder, entity.name, prepare)

    resource = dlt.resource(
        records,
        name=entity.name,
        primary_key="id",
        write_disposition="merge",
        columns=columns,
        parallelized=True,
    )
    resource = with_deletions_table(resource)
    if builder is None:
        if not entity.has_custom_fields:
            return resource.add_map(prepare)
        return resource.add_map(lambda r: prepare(pivot.pivot(r, entity.record_type)))
    for child in arrow.children.values():
        # the child tables' own hints, as dlt's normalizer makes them: a parent and dlt's four
        # columns (`apply_hints` would start a variant from the root's: merge on id)
        hints = dlt.mark.make_hints(child, entity.name, columns=CHILD_DLT_COLUMNS)
        resource._set_hints(hints, create_table_variant=True)
    children = list(arrow.children.values())
    return resource.add_map(_owned_child_tables(entity.name, children, builder.imported))


_END = object()  # the last item of an entity's Arrow pages


class _OwnedTable(dict):
    """A nested table's schema that answers `table["resource"]` with its root's resource,
    without holding the key. dlt's extract metrics look up the resource of every table it
    wrote, and a table written at extract is a root table for dlt, while dlt refuses a
    nested table that holds a resource (it cannot merge it); `.get("resource")`, which its
    merges use, still finds none, and none is saved."""

    def __init__(self, table: dict, resource: str) -> None:
        super().__init__(table)
        self._resource = resource

    def __missing__(self, key: str) -> Any:
        if key == "resource":
            return self._resource
        raise KeyError(key)


def _owned_child_tables(
    root: str, children: list[str], imported: Callable[[str], None]
) -> Callable[[Any], Any]:
    """A step, run where dlt writes (after every item before it), that at `_END` makes the
    child tables written by the resource `_OwnedTable`s, tells `imported` that dlt has taken
    the entity's files, and drops `_END`."""

    def step(item: Any) -> Any:
        if item is not _END:
            return item
        imported(root)
        tables = dlt.current.source_schema().tables
        for child in children:
            table = tables.get(child)
            if table is not None and not isinstance(table, _OwnedTable):
                tables[child] = _OwnedTable(table, root)
        return None

    return step


def _as_arrow(
    pages: Iterator[Any], builder: ArrowBuilder, name: str, prepare: Callable[[dict], dict]
) -> Iterator[Any]:
    """Pages of records as dlt items built by `builder` (`copper/arrow_processes.py`): Arrow
    tables of the entity and its child tables, built as dlt's normalizer would build them
    (`copper/arrow.py`), Parquet files to import, and as dicts the records dlt must normalize
    (untidy ones), the deletion log and hard-delete markers."""
    rows = None
    with builder:
        for page in pages:
            if isinstance(page, DataItemWithMeta):  # the deletion log, prepared as on the dict path
                if isinstance(page.data, list):
                    page.data[:] = [prepare(r) for r in page.data]
                yield page
            elif not isinstance(page, list) or not page or DELETED_AT in page[0]:
                yield [prepare(r) for r in page] if isinstance(page, list) else page
            else:
                if rows is None:
                    rows = builder.rows(name, prepare, load_package_state()["load_id"])
                yield from rows.add(page)
        if rows is not None:
            yield from rows.finish()
    yield _END


def _dlt_row(fields: tuple[str, ...]) -> Callable[[dict], dict]:
    """A record as dlt should get it, prepared here, cheaply, rather than in dlt's normalizer:
    unset values left out (a missing key loads as NULL; a third of all values are unset) and
    timestamps as aware datetimes. A timestamp value that is no epoch second of years 1-9999
    is kept as it came, in the variant column dlt gives values it cannot coerce
    (`date_created__v_bigint`...), with one warning per field: handed to dlt as it is, some
    (a time in nanoseconds, for one) fail its normalizer, and with it every later load."""
    warned: set[str] = set()

    def convert(record: dict) -> dict:
        for key in [key for key, value in record.items() if value is None]:
            del record[key]
        for name in fields:
            value = record.get(name)
            if value.__class__ is int and value in _EPOCHS:
                record[name] = datetime.fromtimestamp(value, UTC)
            elif value is not None and not _coerces_to_timestamp(value):
                variant = f"{name}__v_{py_type_to_sc_type(type(value))}"
                record[variant] = record.pop(name)
                if name not in warned:
                    warned.add(name)
                    log.warning("%s: %.200r is no timestamp, kept in %s", name, value, variant)
        return record

    return convert


def _coerces_to_timestamp(value: Any) -> bool:
    """Whether dlt's normalizer turns `value` into a timestamp (an int: one in range)."""
    if value.__class__ is int:
        return False
    try:
        coerce_value("timestamp", py_type_to_sc_type(type(value)), value)
    except Exception:  # ValueError, and the OSError some out-of-range numbers raise
        return False
    return True


def _reference_resource(reference: Reference, client: CopperClient) -> DltResource:
    def rows() -> Iterator[Any]:
        context = f"reference table {reference.name}"
        if reference.method == "POST":
            page = 1
            while True:
                body = {"page_size": PAGE_SIZE, "page_number": page}
                data, _ = client.request("POST", reference.path, body, context=context)
                yield data
                if len(data) < PAGE_SIZE:
                    return
                page += 1
        data = client.get(reference.path, context=context)
        if reference.name == "activity_types" and isinstance(data, dict):
            data = [{**t, "category": t.get("category", c)} for c, ts in data.items() for t in ts]
        yield data

    return dlt.resource(rows, name=reference.name, **_reference_hints(reference))


def _reference_hints(reference: Reference) -> dict[str, Any]:
    hints: dict[str, Any] = {
        "write_disposition": "replace",
        "columns": {name: {"data_type": "text"} for name in reference.text_columns},
    }
    if reference.primary_key:
        hints["primary_key"] = reference.primary_key
    return hints

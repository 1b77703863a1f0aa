"""A dlt source for Copper CRM: every entity, incremental, exact past the 100k cap.

    pipeline = dlt.pipeline("copper", destination="duckdb", dataset_name="copper")
    pipeline.run(copper_source())

Configuration (dlt conventions, e.g. `SOURCES__COPPER__API_KEY`): `api_key` and `user_email`
(or `access_token`), `base_url`, `start_date`, `requests_per_minute`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import dlt
import pendulum
from dlt.common.typing import TSecretStrValue
from dlt.sources import DltResource

from .client import ClientStats, CopperAuthError, CopperClient, CopperError, Credentials
from .custom_fields import CustomFieldPivot, column_names
from .settings import (
    BASE_URL,
    ENTITIES,
    ENTITY_BY_NAME,
    MONEY,
    PAGE_SIZE,
    REFERENCES,
    REQUESTS_PER_MINUTE,
    Entity,
    Reference,
)
from .windows import WindowError, WindowWalker, read_windows

__all__ = [
    "ClientStats",
    "CopperAuthError",
    "CopperClient",
    "CopperError",
    "WindowError",
    "copper_source",
]

log = logging.getLogger("copper")
STATE_COLUMNS = "custom_field_columns"
PROGRESS_EVERY = 10.0  # seconds between progress lines of one entity


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
    window_workers: int = 4,
    min_split_records: int = 10_000,
    entities: Sequence[str] | None = None,
    request_timeout: float = 30.0,
    max_attempts: int = 8,
    max_backoff: float = 60.0,
    stats: ClientStats | None = None,
) -> Iterator[DltResource]:
    """Every Copper entity (merged on id) and the reference tables (replaced each run).

    Args:
        start_date: ISO date; records modified before it are not loaded on the first run.
        requests_per_minute: the account's budget, shared by every resource of the run.
        rate_limit_window: seconds of the rolling window Copper counts requests in (60);
            the budget is `requests_per_minute * rate_limit_window / 60` per window.
        activity_lookback_days: activities dated this far before the cursor are re-read
            every run, because users backdate activities.
        max_window_records: a time window is split until Copper counts at most this many
            matches in it (always below Copper's 100,000 cap); windows are read in parallel.
        window_workers: walks of one entity read at the same time.
        min_split_records: when the request budget has room, an idle walker takes half of a
            running walk with at least this many rows left (about one extra request each).
        entities: restrict to these entity names (reference tables are always included).
        request_timeout: seconds before a request that got no answer is retried.
        max_attempts: tries per request before the run fails (transient errors only).
        max_backoff: the longest wait between two tries, in seconds.
        stats: a `ClientStats` to fill with requests, 429s and records per entity, for
            callers that report on the run (the `copper-pipeline` summary does).
    """
    initial = _start_timestamp(start_date)
    if requests_per_minute < 1 or rate_limit_window <= 0:
        raise ValueError(
            "requests_per_minute must be 1 or more and rate_limit_window positive, got "
            f"{requests_per_minute} and {rate_limit_window}"
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

    selected = [e for e in ENTITIES if not entities or e.name in entities]
    for entity in selected:
        yield _entity_resource(
            entity,
            client,
            pivot,
            initial=initial,
            run_start=run_start,
            lookback_days=activity_lookback_days if entity.lookback_days else 0,
            max_window_records=max_window_records,
            window_workers=window_workers,
            min_split_records=min_split_records,
        )
    for reference in REFERENCES:
        if reference.name == "custom_field_definitions":  # already read, for the pivot
            yield dlt.resource(definitions, name=reference.name, **_reference_hints(reference))
        else:
            yield _reference_resource(reference, client)
    yield _mapping_resource(pivot)


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
    client: CopperClient,
    pivot: CustomFieldPivot,
    *,
    initial: int,
    run_start: int,
    lookback_days: int,
    max_window_records: int,
    window_workers: int,
    min_split_records: int,
) -> DltResource:
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
    lag = lookback_days * 86_400 or None

    def records(
        cursor: dlt.sources.incremental[int] = dlt.sources.incremental(  # noqa: B008
            entity.cursor, initial_value=initial, primary_key=(), lag=lag
        ),
    ) -> Iterator[list[dict]]:
        if entity.has_custom_fields:
            dlt.current.source_state()[STATE_COLUMNS] = pivot.columns
        lo = int(cursor.start_value if cursor.start_value is not None else initial)
        if lo > run_start:
            return
        walker = WindowWalker(entity, lambda body, ctx: client.search(entity.name, body, ctx))
        planned = walker.plan(lo, run_start, max_window_records)
        log.info("%s: %d window(s) from %s", entity.name, len(planned), planned[0].window)
        count, last_report = 0, time.monotonic()
        spare = client.budget.has_spare_capacity
        for page in read_windows(walker, planned, window_workers, spare, min_split_records):
            if entity.has_custom_fields:
                for record in page:
                    pivot.pivot(record, entity.record_type)
            count += len(page)
            yield page
            if time.monotonic() - last_report > PROGRESS_EVERY:
                last_report = time.monotonic()
                log.info("%s: %s records so far", entity.name, f"{count:,}")
        log.info("%s: %s records read", entity.name, f"{count:,}")

    resource = dlt.resource(
        records,
        name=entity.name,
        primary_key="id",
        write_disposition="merge",
        columns=columns,
        parallelized=True,
    )
    # steps: [records, incremental]; insert after the incremental, which works on epoch ints
    # (a plain add_map would place itself before it)
    return resource.add_map(_dlt_row(entity.timestamps), insert_at=2)


def _dlt_row(fields: tuple[str, ...]) -> Callable[[dict], dict]:
    """A record as dlt should get it, prepared here, cheaply, rather than in dlt's normalizer:
    unset values left out (a missing key loads as NULL; a third of all values are unset) and
    timestamps as aware datetimes."""

    def convert(record: dict) -> dict:
        for key in [key for key, value in record.items() if value is None]:
            del record[key]
        for name in fields:
            value = record.get(name)
            if value.__class__ is int:
                record[name] = datetime.fromtimestamp(value, UTC)
        return record

    return convert


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

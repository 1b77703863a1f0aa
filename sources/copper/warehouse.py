"""What the source reads back from the warehouse it loads, and the one write deletions need.

Reconciliation compares Copper with the rows the warehouse holds: `live_rows` reads them as
(id, key, date_modified) arrays through the pipeline's own SQL client (DuckDB or Postgres).
Soft deletes are logged in `_copper_deletions` with the load that detected them;
`mark_deletions` then sets `_copper_deleted_at` on every row loaded no later than its deletion.
The mark is idempotent (run it after every load; `copper-pipeline run` does), and a row
loaded again later, because the record came back, is left live.
"""

from __future__ import annotations

import logging
from pathlib import Path

import dlt
import numpy as np

from .reconcile import KnownRows
from .settings import Entity

log = logging.getLogger("copper")

DELETED_AT = "_copper_deleted_at"  # set on rows Copper no longer has
DELETIONS = "_copper_deletions"  # one row per detected deletion: entity, id, when, how
DELETION_COLUMNS = {
    "entity": {"data_type": "text", "nullable": False},
    "id": {"data_type": "bigint", "nullable": False},
    "detected_at": {"data_type": "timestamp", "nullable": False},
    "detected_by": {"data_type": "text", "nullable": False},
}


def live_rows(pipeline: dlt.Pipeline, entity: Entity) -> KnownRows:
    """The warehouse's rows of `entity` that are not deleted (none if it has no table yet)."""
    columns = _columns(pipeline)
    table = columns.get(entity.name)
    key = entity.reconcile_key[0]
    if not table or not {"id", key, "date_modified"} <= table:
        return KnownRows.empty()
    with pipeline.sql_client() as client:
        name = client.make_qualified_table_name(entity.name)
        where = [f"x.{DELETED_AT} is null"] if DELETED_AT in table else []
        if DELETIONS in columns:
            deletions = client.make_qualified_table_name(DELETIONS)
            where.append(
                f"not exists (select 1 from {deletions} d where d.entity = '{entity.name}' "
                "and d.id = x.id and d._dlt_load_id >= x._dlt_load_id)"
            )
        sql = f"select x.id, {_epoch('x.' + key)}, {_epoch('x.date_modified')} from {name} x" + (
            f" where {' and '.join(where)}" if where else ""
        )
        with client.execute_query(sql) as cursor:
            rows = cursor.fetchall()
    if not rows:
        return KnownRows.empty()
    data = np.asarray(rows, dtype=np.int64)
    return KnownRows.of(data[:, 0], data[:, 1], data[:, 2])


def mark_deletions(pipeline: dlt.Pipeline) -> int:
    """Set `_copper_deleted_at` from the deletion log on rows loaded no later than the
    deletion. Returns the rows marked."""
    columns = _columns(pipeline)
    if DELETIONS not in columns:
        return 0
    marked = 0
    with pipeline.sql_client() as client:
        deletions = client.make_qualified_table_name(DELETIONS)
        for table, names in columns.items():
            if DELETED_AT not in names or table.startswith("_"):
                continue
            name = client.make_qualified_table_name(table)
            sql = (
                f"update {name} as x set {DELETED_AT} = d.detected_at from {deletions} d "
                f"where d.entity = '{table}' and d.id = x.id and x.{DELETED_AT} is null "
                "and x._dlt_load_id <= d._dlt_load_id"
            )
            with client.execute_query(sql) as cursor:
                marked += max(cursor.rowcount or 0, 0)
    if marked:
        log.info("marked %d deleted row(s)", marked)
    return marked


def _columns(pipeline: dlt.Pipeline) -> dict[str, set[str]]:
    """Tables of the pipeline's dataset in the destination, with their columns."""
    credentials = pipeline.destination_client().config.credentials
    database = getattr(credentials, "database", None)
    if type(credentials).__name__ == "DuckDbCredentials" and not (
        isinstance(database, str) and (database == ":memory:" or Path(database).exists())
    ):
        return {}  # no DuckDB file yet: nothing loaded (and opening it would create it)
    with pipeline.sql_client() as client:
        if not client.has_dataset():
            return {}
        schema = pipeline.dataset_name.replace("'", "")
        sql = (
            "select table_name, column_name from information_schema.columns "
            f"where table_schema = '{schema}'"
        )
        with client.execute_query(sql) as cursor:
            rows = cursor.fetchall()
    tables: dict[str, set[str]] = {}
    for table, column in rows:
        tables.setdefault(table, set()).add(column)
    return tables


def _epoch(column: str) -> str:
    """Whole Unix seconds of a timestamp column, the same in DuckDB and Postgres."""
    return f"coalesce(cast(floor(extract(epoch from {column})) as bigint), -1)"

"""Load the sandbox with the Copper source into DuckDB, and compare the warehouse to the truth."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import dlt

from copper import copper_source, mark_deletions
from copper_sandbox import RunningSandbox
from pipelines.runner import LOADER_FORMAT
from pipelines.tuning import tuned_for_throughput

ENTITY_FIELDS = {
    "people": ("name", "title", "assignee_id", "company_id"),
    "companies": ("name", "email_domain", "assignee_id"),
    "leads": ("name", "status", "monetary_value"),
    "opportunities": ("name", "status", "pipeline_stage_id", "monetary_value"),
    "projects": ("name", "status"),
    "tasks": ("name", "status", "priority"),
    "activities": ("details", "user_id"),
}
TIMESTAMPS = {"activities": ("date_modified", "activity_date")}


class Loader:
    """A dlt pipeline into a warehouse (a DuckDB file in `root` unless told otherwise),
    pointed at a running sandbox; reads back through dlt's own SQL client."""

    def __init__(
        self,
        root: Path,
        running: RunningSandbox,
        name: str = "copper_test",
        destination: Any = None,
        dataset: str = "copper",
        duckdb_path: Path | None = None,
    ) -> None:
        self.root = root
        self.running = running
        self.db_path = duckdb_path or root / f"{name}.duckdb"
        self.pipeline = dlt.pipeline(
            pipeline_name=name,
            pipelines_dir=str(root / "pipelines"),
            destination=destination or dlt.destinations.duckdb(str(self.db_path)),
            dataset_name=dataset,
        )

    def source(self, **options: Any):
        options.setdefault("requests_per_minute", 100_000)
        self.pipeline.activate()  # the source reads the active pipeline's warehouse
        return copper_source(
            api_key=self.running.api_key,
            user_email=self.running.user_email,
            base_url=self.running.base_url,
            **options,
        )

    def run(self, **options: Any):
        file_format = LOADER_FORMAT.get(self.pipeline.destination.destination_type.split(".")[-1])
        with tuned_for_throughput():  # as copper-pipeline runs
            info = self.pipeline.run(self.source(**options), loader_file_format=file_format)
        info.raise_on_failed_jobs()
        mark_deletions(self.pipeline)  # as copper-pipeline does after every load
        return info

    def query(self, sql: str) -> list[dict]:
        """Rows of a query; `{dataset}` in `sql` is replaced by the dataset's qualified name."""
        with self.pipeline.sql_client() as client:
            sql = sql.replace("{dataset}", client.fully_qualified_dataset_name())
            with client.execute_query(sql) as cursor:
                names = [d[0] for d in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def rows(self, table: str) -> list[dict]:
        return self.query(f"select * from {{dataset}}.{table}")

    def live_rows(self, table: str) -> list[dict]:
        """Rows not marked deleted (all rows, where the table has no deletion column)."""
        rows = self.rows(table)
        return [r for r in rows if r.get("_copper_deleted_at") is None]

    def tables(self) -> set[str]:
        if self.pipeline.default_schema_name is None:
            return set()
        with self.pipeline.sql_client() as client:
            if not client.has_dataset():
                return set()
        rows = self.query(
            "select table_name from information_schema.tables "
            f"where table_schema = '{self.pipeline.dataset_name}'"
        )
        return {r["table_name"] for r in rows}


def epoch(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp())
    return int(value)


def custom_values(entries: list[dict]) -> dict[int, Any]:
    return {e["custom_field_definition_id"]: e["value"] for e in entries if e["value"] is not None}


def assert_warehouse_equals(loader: Loader, entity: str, truth: list[dict] | None = None) -> None:
    """Every current record, with its values, and nothing else (no lost, stale or extra rows)."""
    truth = truth if truth is not None else loader.running.sandbox.account.snapshot(entity)
    rows = loader.live_rows(entity)
    by_id = {r["id"]: r for r in rows}
    assert len(by_id) == len(rows), f"{entity}: duplicate ids in the warehouse"
    missing = {t["id"] for t in truth} - set(by_id)
    extra = set(by_id) - {t["id"] for t in truth}
    assert not missing and not extra, f"{entity}: {len(missing)} missing, {len(extra)} extra"
    for record in truth:
        row = by_id[record["id"]]
        for column in ("date_modified", *TIMESTAMPS.get(entity, ())):
            assert epoch(row[column]) == record[column], (entity, record["id"], column)
        for column in ENTITY_FIELDS[entity]:
            value = row[column]
            if isinstance(value, Decimal):  # money lands as decimal(38, 9)
                value = float(value)
            assert value == record.get(column), (entity, record["id"], column)
        if entity != "activities":
            raw = row["custom_fields"]
            landed = custom_values(json.loads(raw) if isinstance(raw, str) else raw)
            current = custom_values(record["custom_fields"])
            # Copper adds/drops entries when definitions change without touching date_modified;
            # the data is the set values of the fields that exist now
            assert {k: v for k, v in landed.items() if k in current} == current


def assert_activities_equal_within_lookback(loader: Loader, first_seen: list[dict]) -> None:
    """Activities are read by activity_date (Copper documents no modified-date filter for
    them), so an edit to an activity dated before the lookback is not seen until a full
    refresh; every activity is still there, and all others are exact."""
    truth = loader.running.sandbox.account.snapshot("activities")
    horizon = loader.running.sandbox.account.clock.now() - 30 * 86_400
    first = {r["id"]: r for r in first_seen}
    visible = [r for r in truth if r["activity_date"] >= horizon or first.get(r["id"]) == r]
    rows = {r["id"]: r for r in loader.live_rows("activities")}
    assert set(rows) == {r["id"] for r in truth}  # none lost, none deleted left live
    for record in visible:
        assert epoch(rows[record["id"]]["date_modified"]) == record["date_modified"]

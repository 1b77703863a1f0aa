"""Deletions through dbt: staging models and marts hold only the records Copper still has, and
fct_deletions lists exactly the deleted ones, on DuckDB and Postgres, soft and hard deletes."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import dlt
import nbformat
import pytest
from nbclient import NotebookClient

from copper.settings import ENTITIES
from copper_sandbox import SandboxAccount

from .test_dbt import build, dbt_paths, pg_reporting  # noqa: F401 (fixtures)
from .test_notebooks import NOTEBOOK, kernel_for_this_python, outputs_of
from .warehouse import Loader, epoch

EVERY_RUN = {"reconcile_every_hours": 0}  # look for deletions on every run
NAMES = [e.name for e in ENTITIES]
STAGING = {  # entity -> (staging model, its key)
    "people": ("stg_people", "person_id"),
    "companies": ("stg_companies", "company_id"),
    "leads": ("stg_leads", "lead_id"),
    "opportunities": ("stg_opportunities", "opportunity_id"),
    "projects": ("stg_projects", "project_id"),
    "tasks": ("stg_tasks", "task_id"),
    "activities": ("stg_activities", "activity_id"),
}
MARTS = {  # entity -> (mart, its key)
    "people": ("dim_people", "person_id"),
    "companies": ("dim_companies", "company_id"),
    "leads": ("fct_leads", "lead_id"),
    "opportunities": ("fct_opportunities", "opportunity_id"),
    "activities": ("fct_activities", "activity_id"),
}
RECORD_TYPES = {e.name: e.record_type for e in ENTITIES}  # the source's own table


def delete_some(account: SandboxAccount, per_entity: int, seed: int) -> dict[str, list[dict]]:
    """Delete `per_entity` records of every entity (people with emails, so that child rows are
    left behind by soft deletes); the deleted records as they were."""
    rng = random.Random(seed)
    deleted = {}
    for name in NAMES:
        records = account.snapshot(name)
        if name == "people":
            records = [r for r in records if r.get("emails")]
        deleted[name] = rng.sample(records, per_entity)
        for record in deleted[name]:
            account.delete(name, record["id"])
    return deleted


def ids(loader: Loader, schema: str, model: str, key: str) -> list[int]:
    return [r["id"] for r in loader.query(f"select {key} as id from {schema}.{model}")]


def deletions(loader: Loader, schema: str) -> dict[tuple[str, int], dict]:
    rows = loader.query(f"select * from {schema}.fct_deletions")
    by_record = {(r["entity"], r["record_id"]): r for r in rows}
    assert len(by_record) == len(rows)
    return by_record


def assert_only_live_records(loader: Loader, account: SandboxAccount, schema: str) -> None:
    """Every entity's staging model and mart holds exactly the sandbox's records."""
    for name in NAMES:
        truth = sorted(r["id"] for r in account.snapshot(name))
        model, key = STAGING[name]
        assert sorted(ids(loader, schema, model, key)) == truth, model  # no duplicates either
        if name in MARTS:
            model, key = MARTS[name]
            assert sorted(ids(loader, schema, model, key)) == truth, model
    leads = loader.query(f"select sum(leads) as n from {schema}.rpt_lead_conversion")
    assert int(leads[0]["n"]) == account.count("leads")
    user = sum(a["type"]["category"] == "user" for a in account.snapshot("activities"))
    sql = f"select sum(activities) as n from {schema}.rpt_activities_per_owner_week"
    weekly = loader.query(sql)
    assert int(weekly[0]["n"]) == user


def assert_deletions_listed(
    loader: Loader, schema: str, deleted: dict[str, list[dict]], soft: bool
) -> None:
    """fct_deletions: one row per deleted record, nothing else, with what the warehouse knew."""
    listed = deletions(loader, schema)
    assert set(listed) == {(name, r["id"]) for name, records in deleted.items() for r in records}
    for name, records in deleted.items():
        for record in records:
            row = listed[(name, record["id"])]
            assert row["deleted_record_key"] == f"{name}:{record['id']}"
            assert row["record_type"] == RECORD_TYPES[name]
            assert row["detected_by"] == "reconciliation"
            assert row["detected_date"] == row["detected_at"].date()
            assert row["detected_week"] == row["detected_date"] - dt.timedelta(
                days=row["detected_date"].weekday()
            )
            assert row["times_logged"] == 1 and row["is_row_kept"] is soft
            if not soft:  # the row is gone: nothing left to say about the record
                assert (row["record_name"], row["last_modified_at"]) == (None, None)
                continue
            # timestamps are UTC without time zone
            modified = row["last_modified_at"].replace(tzinfo=dt.UTC)
            assert epoch(modified) == record["date_modified"], (name, record["id"])
            assert row["last_modified_date"] == modified.date()
            if name == "activities":
                assert row["owner_id"] == record["user_id"]
                assert row["record_name"]  # the activity type's name
            else:
                assert row["owner_id"] == record.get("assignee_id")
                assert row["record_name"] == record["name"], (name, record["id"])
    per_day = loader.query(
        f"select detected_date, entity, count(*) as n from {schema}.fct_deletions group by 1, 2"
    )
    assert sum(r["n"] for r in per_day) == sum(len(r) for r in deleted.values())


def run_with_deletions(loader: Loader, account: SandboxAccount, **options: Any) -> dict:
    """Load, delete 3 records of every entity in Copper, load again, build dbt."""
    loader.run(**EVERY_RUN, **options)
    build(loader)
    deleted = delete_some(account, 3, seed=len(account.snapshot("people")))
    loader.run(**EVERY_RUN, **options)
    build(loader)
    return deleted


def test_duckdb_staging_and_marts_leave_deleted_records_out(serve: Any, tmp_path: Path) -> None:
    account = SandboxAccount.generate(seed=61, scale=0.1)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        deleted = run_with_deletions(loader, account)
        assert_only_live_records(loader, account, "copper_reporting")
        assert_deletions_listed(loader, "copper_reporting", deleted, soft=True)

        # soft deletes keep the deleted people's emails; they never come back through stg_people
        gone = ", ".join(str(r["id"]) for r in deleted["people"])
        orphans = loader.query(
            "select count(*) as n from {dataset}.people__emails e join {dataset}.people p "
            f"on p._dlt_id = e._dlt_parent_id where p.id in ({gone})"
        )
        assert orphans[0]["n"] >= len(deleted["people"])
        emails = {e["email"] for r in deleted["people"] for e in r["emails"]}
        rows = loader.query("select email from copper_reporting.stg_people")
        assert not emails & {r["email"] for r in rows}


def test_postgres_staging_and_marts_leave_deleted_records_out(
    serve: Any,
    tmp_path: Path,
    postgres_url: str,
    pg_dataset: str,
    pg_reporting: str,  # noqa: F811 (the fixture)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGTZ", "Pacific/Kiritimati")  # sessions at UTC+14: dates must not move
    account = SandboxAccount.generate(seed=62, scale=0.1)
    with serve(account) as running:
        loader = Loader(
            tmp_path,
            running,
            name="copper_pg",
            destination=dlt.destinations.postgres(postgres_url),
            dataset=pg_dataset,
        )
        deleted = run_with_deletions(loader, account)
        assert_only_live_records(loader, account, pg_reporting)
        assert_deletions_listed(loader, pg_reporting, deleted, soft=True)


def test_hard_deletes_are_listed_without_their_rows(serve: Any, tmp_path: Path) -> None:
    account = SandboxAccount.generate(seed=63, scale=0.05)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        deleted = run_with_deletions(loader, account, deletes="hard")
        assert_only_live_records(loader, account, "copper_reporting")
        assert_deletions_listed(loader, "copper_reporting", deleted, soft=False)


def test_deletions_logged_but_not_marked_yet_are_left_out(serve: Any, tmp_path: Path) -> None:
    """A crash between a load and the marking of its deletions (or a pipeline of one's own that
    never calls mark_deletions) leaves `_copper_deleted_at` unset: the log still counts."""
    account = SandboxAccount.generate(seed=64, scale=0.05)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run(**EVERY_RUN)
        deleted = delete_some(account, 2, seed=64)
        loader.run(**EVERY_RUN)
        with loader.pipeline.sql_client() as client:
            for name in NAMES:
                table = client.make_qualified_table_name(name)
                client.execute_sql(f"update {table} set _copper_deleted_at = null")
        assert all(r["_copper_deleted_at"] is None for name in NAMES for r in loader.rows(name))
        build(loader)
        assert_only_live_records(loader, account, "copper_reporting")
        assert_deletions_listed(loader, "copper_reporting", deleted, soft=True)


def test_a_record_back_in_copper_is_live_and_no_longer_listed(serve: Any, tmp_path: Path) -> None:
    account = SandboxAccount.generate(seed=65, scale=0.05)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run(**EVERY_RUN)
        back, twice = (r["id"] for r in account.snapshot("opportunities")[4:6])
        for record_id in (back, twice):
            account.delete("opportunities", record_id)
        loader.run(**EVERY_RUN)
        for record_id in (back, twice):
            account.restore("opportunities", record_id)
        loader.run(**EVERY_RUN)
        account.delete("opportunities", twice)  # deleted again
        loader.run(**EVERY_RUN)
        build(loader)
        assert_only_live_records(loader, account, "copper_reporting")
        listed = deletions(loader, "copper_reporting")
        assert list(listed) == [("opportunities", twice)]
        assert listed[("opportunities", twice)]["times_logged"] == 2
        log = loader.query(
            "select record_id, is_restored from copper_reporting.stg_deletions order by load_id"
        )
        assert sorted((r["record_id"], r["is_restored"]) for r in log) == sorted(
            [(back, True), (twice, True), (twice, False)]
        )


def test_a_warehouse_without_deletions_builds_an_empty_fct_deletions(
    serve: Any, tmp_path: Path
) -> None:
    account = SandboxAccount.generate(seed=66, scale=0.02)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run()
        lines = build(loader)
        count = "select count(*) as n from copper_reporting.fct_deletions"
        assert loader.query(count) == [{"n": 0}]
        assert " 0 warnings" in lines[-1], lines

        # a warehouse loaded before deletions were tracked: no log, no deletion column
        with loader.pipeline.sql_client() as client:
            log = client.make_qualified_table_name("_copper_deletions")
            client.execute_sql(f"drop table {log}")
            for name in NAMES:
                table = client.make_qualified_table_name(name)
                client.execute_sql(f"alter table {table} drop column _copper_deleted_at")
        build(loader)
        assert loader.query(count) == [{"n": 0}]
        assert_only_live_records(loader, account, "copper_reporting")


def test_the_notebook_counts_live_records_only(
    serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = SandboxAccount.generate(seed=67, scale=0.05)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run(**EVERY_RUN)
        deleted = delete_some(account, 2, seed=67)
        loader.run(**EVERY_RUN)
    live = sum(account.count(name) for name in NAMES)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("COPPER_DUCKDB_PATH", str(loader.db_path))
    monkeypatch.delenv("COPPER_DATASET", raising=False)
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "matplotlib"))
    NotebookClient(
        notebook,
        timeout=120,
        kernel_name=kernel_for_this_python(tmp_path / "kernel", monkeypatch),
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    cell = next(c for c in notebook.cells if "freshness" in c.metadata.get("tags", []))
    _, text = outputs_of(cell)
    assert f"The warehouse holds {live:,} records" in text, text
    gone = sum(len(r) for r in deleted.values())
    assert f"{gone:,} records deleted in Copper" in text, text

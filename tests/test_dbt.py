"""The dbt project on a loaded sandbox: every model and dbt test passes on DuckDB and Postgres,
and the marts agree with the sandbox's own truth."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import dlt
import duckdb
import psycopg2
import pytest

from copper_sandbox import SandboxAccount
from pipelines.reporting import build_dbt

from .warehouse import Loader

Serve = Callable[..., Any]  # the `serve` fixture of conftest
PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"


@pytest.fixture(autouse=True)
def dbt_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dbt's target/ and logs/ in this test's own directory: parallel tests never share them."""
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "dbt_target"))
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "dbt_logs"))


@pytest.fixture
def pg_reporting(postgres_url: str, pg_dataset: str) -> Iterator[str]:
    """The schema dbt builds into for `pg_dataset`; dropped after the test."""
    schema = f"{pg_dataset}_reporting"
    yield schema
    with contextlib.closing(psycopg2.connect(postgres_url)) as con:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(f'drop schema if exists "{schema}" cascade')


def build(loader: Loader) -> list[str]:
    """`build_dbt` on the loader's warehouse; the lines it logged."""
    lines: list[str] = []
    build_dbt(loader.pipeline, PROJECT, lines.append)
    assert lines[-1].startswith("dbt build") and " 0 failed" in lines[-1], lines
    assert " 0 skipped" in lines[-1], lines
    return lines


def columns(loader: Loader, schema: str, table: str) -> set[str]:
    """Column names of `schema.table`."""
    rows = loader.query(
        "select column_name from information_schema.columns "
        f"where table_schema = '{schema}' and table_name = '{table}'"
    )
    return {r["column_name"] for r in rows}


def money(value: Any) -> Decimal:
    """An amount as an exact Decimal (the sandbox holds floats, the warehouse decimals)."""
    return Decimal(str(value or 0))


def mdy(text: str) -> dt.date:
    """Copper's close_date text "M/D/YYYY" as a date."""
    month, day, year = (int(part) for part in text.split("/"))
    return dt.date(year, month, day)


def assert_marts_match(loader: Loader, account: SandboxAccount, schema: str) -> None:
    """Mart values against the sandbox's snapshot."""
    opportunities = account.snapshot("opportunities")
    closed = Counter(
        (o["pipeline_id"], o["status"]) for o in opportunities if o["status"] in ("Won", "Lost")
    )
    landed: Counter[tuple[int, str]] = Counter()
    for r in loader.query(f"select pipeline_id, won, lost from {schema}.rpt_win_rate"):
        landed[(r["pipeline_id"], "Won")] += r["won"]
        landed[(r["pipeline_id"], "Lost")] += r["lost"]
    assert +landed == closed and closed

    # closed_date: Copper's close_date when set (parsed alike on every adapter), else modified
    facts = {
        r["opportunity_id"]: r
        for r in loader.query(
            "select opportunity_id, closed_date, closed_date_source "
            f"from {schema}.fct_opportunities"
        )
    }
    assert set(facts) == {o["id"] for o in opportunities}
    for o in opportunities:
        fact = facts[o["id"]]
        if o["status"] == "Open":
            assert fact["closed_date"] is None
        elif o["close_date"]:
            assert (fact["closed_date"], fact["closed_date_source"]) == (
                mdy(o["close_date"]),
                "close_date",
            )
        else:
            assert fact["closed_date_source"] == "date_modified"

    open_value: defaultdict[int, Decimal] = defaultdict(Decimal)
    for o in opportunities:
        if o["status"] == "Open":
            open_value[o["pipeline_stage_id"]] += money(o["monetary_value"])
    rows = loader.query(
        f"select pipeline_stage_id, open_value from {schema}.rpt_pipeline_value_by_stage"
    )
    assert {r["pipeline_stage_id"]: money(r["open_value"]) for r in rows} == {
        r["pipeline_stage_id"]: open_value.get(r["pipeline_stage_id"], Decimal(0)) for r in rows
    }

    stage_changed = next(
        t["id"] for t in account.activity_types["system"] if t["name"] == "Pipeline Stage Changed"
    )
    activities = account.snapshot("activities")
    stage_changes = {
        a["id"]
        for a in activities
        if a["type"] == {"id": stage_changed, "category": "system"}
        and a["parent"]["type"] == "opportunity"
    }
    rows = loader.query(f"select stage_change_id from {schema}.fct_opportunity_stage_changes")
    assert len(rows) == len(stage_changes) > 0
    assert {r["stage_change_id"] for r in rows} == stage_changes

    # days are UTC days whatever the session's time zone (the Postgres test sets another)
    rows = loader.query(f"select activity_id, activity_date from {schema}.fct_activities")
    assert {r["activity_id"]: r["activity_date"] for r in rows} == {
        a["id"]: dt.datetime.fromtimestamp(a["activity_date"], dt.UTC).date() for a in activities
    }

    user_activities = sum(a["type"]["category"] == "user" for a in activities)
    rows = loader.query(f"select sum(activities) as n from {schema}.rpt_activities_per_owner_week")
    assert int(rows[0]["n"]) == user_activities

    leads = account.snapshot("leads")
    converted = sum(lead["converted_timestamp"] is not None for lead in leads)
    rows = loader.query(
        f"select count(*) as n, sum(case when is_converted then 1 else 0 end) as converted "
        f"from {schema}.fct_leads"
    )
    assert (rows[0]["n"], int(rows[0]["converted"])) == (len(leads), converted)
    rows = loader.query(
        f"select sum(leads) as n, sum(converted) as c from {schema}.rpt_lead_conversion"
    )
    assert (int(rows[0]["n"]), int(rows[0]["c"])) == (len(leads), converted)

    # custom field columns pass through, whatever the account calls them
    loaded = {
        c for c in columns(loader, loader.pipeline.dataset_name, "companies") if c.startswith("cf_")
    }
    assert loaded
    assert {c for c in columns(loader, schema, "stg_companies") if c.startswith("cf_")} == loaded
    assert {c for c in columns(loader, schema, "dim_companies") if c.startswith("cf_")} == loaded


def test_duckdb_builds_and_marts_match_the_sandbox(serve: Serve, tmp_path: Path) -> None:
    account = SandboxAccount.generate(seed=11, scale=0.1)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run()
        lines = build(loader)
        assert_marts_match(loader, account, "copper_reporting")
    # dbt let go of the file: it opens read-only in this process, as the demo does
    with duckdb.connect(str(loader.db_path), read_only=True) as con:
        assert con.sql("select count(*) from copper_reporting.fct_leads").fetchall()
    models = len(list((PROJECT / "models").rglob("*.sql")))
    assert f" {models} models" in lines[-1] and " 0 warnings" in lines[-1], lines
    assert (tmp_path / "dbt_target" / "run_results.json").exists()  # not in the project's target/


def test_postgres_builds_and_marts_match_the_sandbox(
    serve: Serve,
    tmp_path: Path,
    postgres_url: str,
    pg_dataset: str,
    pg_reporting: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGTZ", "Pacific/Kiritimati")  # sessions at UTC+14: dates must not move
    account = SandboxAccount.generate(seed=12, scale=0.1)
    with serve(account) as running:
        loader = Loader(
            tmp_path,
            running,
            name="copper_pg",
            destination=dlt.destinations.postgres(postgres_url),
            dataset=pg_dataset,
        )
        loader.run()
        lines = build(loader)
        assert_marts_match(loader, account, pg_reporting)
    assert " 0 warnings" in lines[-1], lines


def test_a_new_custom_field_reaches_dim_companies(serve: Serve, tmp_path: Path) -> None:
    account = SandboxAccount.generate(seed=13, scale=0.05)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run()
        build(loader)
        assert "cf_renewal_owner" not in columns(loader, "copper_reporting", "dim_companies")

        field = account.add_custom_field("Renewal Owner", "String", ["company"])
        company = account.snapshot("companies")[3]
        value = [{"custom_field_definition_id": field["id"], "value": "Dana Scully"}]
        account.update("companies", company["id"], {"custom_fields": value})
        loader.run()
        build(loader)
        rows = loader.query(
            "select company_id, cf_renewal_owner from copper_reporting.dim_companies "
            "where cf_renewal_owner is not null"
        )
    assert rows == [{"company_id": company["id"], "cf_renewal_owner": "Dana Scully"}]
    assert "cf_renewal_owner" in columns(loader, "copper_reporting", "stg_companies")


def test_an_account_without_leads_projects_or_tasks_builds(serve: Serve, tmp_path: Path) -> None:
    """dlt creates tables and columns only for data it saw: missing ones must not break dbt."""
    counts = {"leads": 0, "projects": 0, "tasks": 0, "activities": 3, "opportunities": 4}
    account = SandboxAccount.generate(seed=14, scale=0.002, counts=counts)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run()
        assert not {"leads", "projects", "tasks"} & loader.tables()
        build(loader)
        rows = loader.query("select count(*) as n from copper_reporting.fct_leads")
        facts = loader.query("select count(*) as n from copper_reporting.fct_opportunities")
    assert (rows[0]["n"], facts[0]["n"]) == (0, 4)
    assert {"lead_id", "is_converted"} <= columns(loader, "copper_reporting", "fct_leads")

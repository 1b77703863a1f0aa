"""On PostgreSQL the warehouse equals the sandbox just as on DuckDB, with the types users expect."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dlt
import pytest

from copper.settings import ENTITIES
from copper_sandbox import RunningSandbox, SandboxAccount

from .warehouse import Loader, assert_warehouse_equals

Serve = Callable[..., Any]  # the `serve` fixture of conftest
NAMES = [e.name for e in ENTITIES]
FORMATS = ["insert_values", "csv"]  # dlt's default for Postgres, and COPY
CSV_LOSES_EMPTY_STRINGS = pytest.mark.xfail(
    raises=AssertionError,
    strict=True,
    reason="dlt's csv COPY uses FORCE_NULL: an empty string lands as NULL",
)


def pg_loader(tmp_path: Path, running: RunningSandbox, url: str, dataset: str) -> Loader:
    """A Loader into `dataset` of the Postgres server at `url`."""
    return Loader(
        tmp_path,
        running,
        name="copper_pg",
        destination=dlt.destinations.postgres(url),
        dataset=dataset,
    )


def run(loader: Loader, loader_file_format: str) -> None:
    """`loader.run()`, writing load files in `loader_file_format`."""
    info = loader.pipeline.run(loader.source(), loader_file_format=loader_file_format)
    info.raise_on_failed_jobs()


def assert_all_equal(loader: Loader, loader_file_format: str = "insert_values") -> None:
    """Exact, except that csv lands an empty string as NULL (see the test at the end)."""
    for name in NAMES:
        truth = loader.running.sandbox.account.snapshot(name)
        if loader_file_format == "csv":
            truth = [{k: None if v == "" else v for k, v in r.items()} for r in truth]
        assert_warehouse_equals(loader, name, truth)


def column_types(loader: Loader, table: str) -> dict[str, str]:
    """Column name -> Postgres data_type, from information_schema."""
    rows = loader.query(
        "select column_name, data_type from information_schema.columns "
        f"where table_schema = '{loader.pipeline.dataset_name}' and table_name = '{table}'"
    )
    return {r["column_name"]: r["data_type"] for r in rows}


@pytest.mark.parametrize("loader_file_format", FORMATS)
def test_full_then_incremental_then_no_change_loads_equal_the_sandbox(
    serve: Serve, tmp_path: Path, postgres_url: str, pg_dataset: str, loader_file_format: str
) -> None:
    account = SandboxAccount.generate(seed=21, scale=0.1)
    with serve(account) as running:
        loader = pg_loader(tmp_path, running, postgres_url, pg_dataset)
        run(loader, loader_file_format)
        assert_all_equal(loader, loader_file_format)

        people = account.snapshot("people")
        account.update("people", people[0]["id"], {"title": "Head of Exactness"})
        account.update("people", people[7]["id"], {"name": "Renamed Person"})
        opportunities = account.snapshot("opportunities")
        account.update("opportunities", opportunities[3]["id"], {"status": "Won"})
        account.update("opportunities", opportunities[4]["id"], {"monetary_value": 1234.5})
        created = account.create("companies", {"name": "Newco"})
        run(loader, loader_file_format)
        assert_all_equal(loader, loader_file_format)
        assert created["id"] in {r["id"] for r in loader.rows("companies")}
        titles = {r["id"]: r["title"] for r in loader.rows("people")}
        assert titles[people[0]["id"]] == "Head of Exactness"

        run(loader, loader_file_format)
        assert_all_equal(loader, loader_file_format)


@pytest.mark.parametrize("loader_file_format", FORMATS)
def test_a_new_custom_field_becomes_a_new_column(
    serve: Serve, tmp_path: Path, postgres_url: str, pg_dataset: str, loader_file_format: str
) -> None:
    account = SandboxAccount.generate(seed=13, scale=0.05, untidy=0.0)
    with serve(account) as running:
        loader = pg_loader(tmp_path, running, postgres_url, pg_dataset)
        run(loader, loader_file_format)
        assert "cf_renewal_owner" not in column_types(loader, "companies")

        field = account.add_custom_field("Renewal Owner", "String", ["company"])
        company = account.snapshot("companies")[0]
        value = {"custom_field_definition_id": field["id"], "value": "Ann"}
        account.update("companies", company["id"], {"custom_fields": [value]})
        run(loader, loader_file_format)
        assert column_types(loader, "companies")["cf_renewal_owner"] == "character varying"
        owners = {r["id"]: r["cf_renewal_owner"] for r in loader.rows("companies")}
        assert owners[company["id"]] == "Ann"
        assert {v for k, v in owners.items() if k != company["id"]} == {None}
        assert_all_equal(loader, loader_file_format)


def test_columns_have_the_types_users_expect(
    serve: Serve, tmp_path: Path, postgres_url: str, pg_dataset: str
) -> None:
    with serve(SandboxAccount.generate(seed=12, scale=0.05, untidy=0.0)) as running:
        loader = pg_loader(tmp_path, running, postgres_url, pg_dataset)
        loader.run()
    for name in NAMES:
        assert column_types(loader, name)["date_modified"] == "timestamp with time zone", name
        if name != "activities":
            assert column_types(loader, name)["custom_fields"] == "jsonb", name
    money = loader.query(
        "select table_name, data_type, numeric_precision, numeric_scale "
        "from information_schema.columns "
        f"where table_schema = '{pg_dataset}' and column_name = 'monetary_value'"
    )
    landed = {tuple(m.values()) for m in money}
    assert landed == {("leads", "numeric", 38, 9), ("opportunities", "numeric", 38, 9)}
    types = column_types(loader, "opportunities")
    assert types["cf_contract_start"] == "timestamp with time zone"
    assert types["cf_arr"] == "numeric"
    assert types["cf_deal_score"] == "double precision"
    assert column_types(loader, "people")["cf_vip"] == "boolean"


def test_a_long_custom_field_name_maps_to_the_column_that_exists(
    serve: Serve, tmp_path: Path, postgres_url: str, pg_dataset: str
) -> None:
    account = SandboxAccount.generate(seed=13, scale=0.02, untidy=0.0)
    name = "Primary Renewal Decision Maker Contact Person For The Enterprise Account Team"
    field = account.add_custom_field(name, "String", ["company"])
    with serve(account) as running:
        loader = pg_loader(tmp_path, running, postgres_url, pg_dataset)
        loader.run()
    mapping = loader.rows("custom_field_mapping")
    mapped = {m["column_name"] for m in mapping if m["definition_id"] == field["id"]}
    assert mapped <= set(column_types(loader, "companies")), mapped


@pytest.mark.parametrize(
    "loader_file_format", ["insert_values", pytest.param("csv", marks=CSV_LOSES_EMPTY_STRINGS)]
)
def test_an_empty_string_lands_as_an_empty_string(
    serve: Serve, tmp_path: Path, postgres_url: str, pg_dataset: str, loader_file_format: str
) -> None:
    account = SandboxAccount.generate(seed=3, scale=0.02)
    person = account.snapshot("people")[0]
    account.update("people", person["id"], {"title": ""})
    with serve(account) as running:
        loader = pg_loader(tmp_path, running, postgres_url, pg_dataset)
        run(loader, loader_file_format)
    titles = {r["id"]: r["title"] for r in loader.rows("people")}
    assert titles[person["id"]] == ""


@pytest.mark.parametrize("deletes", ["soft", "hard"])
def test_deletions_on_postgres(
    serve: Serve, tmp_path: Path, postgres_url: str, pg_dataset: str, deletes: str
) -> None:
    account = SandboxAccount.generate(seed=25, scale=0.1)
    with serve(account) as running:
        loader = pg_loader(tmp_path, running, postgres_url, pg_dataset)
        loader.run(deletes=deletes, reconcile_every_hours=0)
        gone = {name: account.snapshot(name)[3]["id"] for name in NAMES}
        for name, record_id in gone.items():
            account.delete(name, record_id)
        loader.run(deletes=deletes, reconcile_every_hours=0)
        assert_all_equal(loader)
        for name, record_id in gone.items():
            rows = [r for r in loader.rows(name) if r["id"] == record_id]
            if deletes == "soft":
                assert rows and rows[0]["_copper_deleted_at"] is not None, name
            else:
                assert rows == [], name
        logged = {(r["entity"], r["id"]) for r in loader.rows("_copper_deletions")}
        assert logged == set(gone.items())

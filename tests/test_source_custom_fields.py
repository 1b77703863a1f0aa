"""Custom fields land as typed, readable columns, and survive renames, additions and deletions."""

from __future__ import annotations

import logging
from datetime import datetime

import duckdb

from copper_sandbox import SandboxAccount

from .warehouse import Loader, assert_warehouse_equals


def column_types(loader: Loader, table: str) -> dict[str, str]:
    with duckdb.connect(str(loader.db_path), read_only=True) as con:
        rows = con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'copper' and table_name = ?",
            [table],
        ).fetchall()
    return dict(rows)


def definition(account: SandboxAccount, name: str) -> dict:
    return next(d for d in account.custom_field_definitions() if d["name"] == name)


def value_of(record: dict, definition_id: int):
    return next(
        cf["value"]
        for cf in record["custom_fields"]
        if cf["custom_field_definition_id"] == definition_id
    )


def test_custom_fields_become_typed_columns_with_labels(serve, tmp_path):
    account = SandboxAccount.generate(seed=12, scale=0.1, untidy=0.0)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run()
    types = column_types(loader, "opportunities")
    assert types["cf_region"] == "JSON"
    assert types["cf_contract_start"] == "TIMESTAMP WITH TIME ZONE"
    assert types["cf_deal_score"] == "DOUBLE"
    assert types["cf_arr"].startswith("DECIMAL")
    assert types["cf_referred_by"] == "JSON"
    assert types["date_modified"] == "TIMESTAMP WITH TIME ZONE"
    assert {"cf_deal_size", "cf_deal_size_2"} <= set(types)  # "Deal Size" vs "Deal-Size"
    assert column_types(loader, "people")["cf_vip"] == "BOOLEAN"
    assert column_types(loader, "tasks")["due_date"] == "TIMESTAMP WITH TIME ZONE"

    industry = definition(account, "Industry")
    labels = {o["id"]: o["name"] for o in industry["options"]}
    rows = {r["id"]: r for r in loader.rows("companies")}
    checked = 0
    for company in account.snapshot("companies"):
        raw = value_of(company, industry["id"])
        assert rows[company["id"]]["cf_industry"] == (labels[raw] if raw is not None else None)
        checked += raw is not None
    assert checked > 0

    start = definition(account, "Contract Start")
    for opportunity in account.snapshot("opportunities"):
        raw = value_of(opportunity, start["id"])
        landed = loader.rows("opportunities")
        row = next(r for r in landed if r["id"] == opportunity["id"])
        if raw is not None:
            assert isinstance(row["cf_contract_start"], datetime)
            assert int(row["cf_contract_start"].timestamp()) == raw
            break

    mapping = loader.rows("custom_field_mapping")
    gold = [m for m in mapping if m["definition_id"] == industry["id"]]
    assert {m["option_label"] for m in gold} == set(labels.values())
    assert {m["column_name"] for m in gold} == {"cf_industry"}


def test_renamed_added_and_deleted_fields_and_options(serve, tmp_path, caplog):
    account = SandboxAccount.generate(seed=13, scale=0.1, untidy=0.0)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run()
        industry = definition(account, "Industry")
        account.rename_custom_field(industry["id"], "Sector")
        tier = account.add_custom_field("Tier", "Dropdown", ["company"], ["Gold", "Silver"])
        gold = tier["options"][0]["id"]
        vip = definition(account, "VIP")
        account.delete_custom_field(vip["id"])
        doomed = industry["options"][0]
        account.delete_option(industry["id"], doomed["id"])
        company = account.snapshot("companies")[0]
        account.update(
            "companies",
            company["id"],
            {
                "custom_fields": [
                    {"custom_field_definition_id": tier["id"], "value": gold},
                    {"custom_field_definition_id": industry["id"], "value": doomed["id"]},
                ]
            },
        )
        with caplog.at_level(logging.WARNING, logger="copper"):
            loader.run()
        assert_warehouse_equals(loader, "companies")
    types = column_types(loader, "companies")
    assert "cf_sector" not in types  # a renamed field keeps its column
    assert "cf_vip" in types  # a deleted field keeps its column and its data
    rows = {r["id"]: r for r in loader.rows("companies")}
    assert rows[company["id"]]["cf_tier"] == "Gold"
    assert rows[company["id"]]["cf_industry"] == str(doomed["id"])  # unknown option: raw id
    assert any(str(doomed["id"]) in m for m in caplog.messages)
    mapping = {m["column_name"]: m["field_name"] for m in loader.rows("custom_field_mapping")}
    assert mapping["cf_industry"] == "Sector"


def test_untidy_values_are_kept_raw_and_never_crash_a_load(serve, tmp_path):
    account = SandboxAccount.generate(seed=14, scale=0.2, untidy=0.2)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run()
        for name in ("people", "companies", "leads", "opportunities", "projects", "tasks"):
            assert_warehouse_equals(loader, name)  # the raw custom_fields array is intact

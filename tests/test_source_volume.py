"""Large volumes: past Copper's 100,000 cap, and a bulk edit of more than 100,000 in one second."""

from __future__ import annotations

import math

import pytest

from copper_sandbox import SandboxAccount

from .warehouse import Loader, assert_warehouse_equals

pytestmark = pytest.mark.slow


def test_an_entity_of_250000_records_loads_exactly_and_economically(serve, tmp_path):
    n = 250_000
    account = SandboxAccount.generate(seed=41, scale=0.01, counts={"companies": n})
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run(entities=["companies"])
        assert_warehouse_equals(loader, "companies")
        searches = running.stats()["by_path"]["POST /companies/search"]
        assert searches <= 1.03 * math.ceil(n / 200), searches  # probes and seams included

        running.admin("POST", "/stats/reset")
        account.update("companies", account.snapshot("companies")[-1]["id"], {"name": "Changed"})
        loader.run(entities=["companies"])
        assert running.stats()["by_path"]["POST /companies/search"] == 1
        assert_warehouse_equals(loader, "companies")


def test_more_than_100000_records_in_one_second_all_arrive(serve, tmp_path):
    account = SandboxAccount.generate(seed=42, scale=0.01, burst=120_000, burst_entity="people")
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run(entities=["people"])
        assert_warehouse_equals(loader, "people")


def test_a_field_first_set_after_tens_of_thousands_of_rows_loads(serve, tmp_path):
    """A sparse field, set on one company in 30,000 and last in the load, gets its column and
    its value (the source leaves unset values out of its rows)."""
    n = 30_000
    account = SandboxAccount.generate(seed=43, scale=0.01, counts={"companies": n})
    last = max(account.snapshot("companies"), key=lambda r: (r["date_created"], r["id"]))
    for record in account.snapshot("companies"):
        if record["id"] != last["id"]:
            account.tables["companies"].put({**record, "primary_contact_id": None})
    account.tables["companies"].put({**last, "primary_contact_id": 27000001})
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run(entities=["companies"])
        assert_warehouse_equals(loader, "companies")
        sql = "select id from {dataset}.companies where primary_contact_id = 27000001"
        rows = loader.query(sql)
        assert rows == [{"id": last["id"]}]

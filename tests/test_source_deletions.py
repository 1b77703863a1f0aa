"""Deletions: Copper forgets a record, the warehouse follows (soft by default, or hard)."""

from __future__ import annotations

import math
import random

import httpx
import pytest

from copper.settings import ENTITIES
from copper_sandbox import SandboxAccount

from .conftest import copper_headers
from .warehouse import Loader, assert_activities_equal_within_lookback, assert_warehouse_equals

NAMES = [e.name for e in ENTITIES]
EVERY_RUN = {"reconcile_every_hours": 0}


def delete_some(account: SandboxAccount, entity: str, count: int, seed: int = 0) -> list[int]:
    ids = random.Random(seed).sample([r["id"] for r in account.snapshot(entity)], count)
    for record_id in ids:
        account.delete(entity, record_id)
    return ids


def searches(running, entity: str) -> int:
    return running.stats()["by_path"].get(f"POST /{entity}/search", 0)


def test_deletes_between_runs_are_marked_in_every_entity(serve, tmp_path):
    account = SandboxAccount.generate(seed=51, scale=0.1)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run(**EVERY_RUN)
        deleted = {name: delete_some(account, name, 3, seed=i) for i, name in enumerate(NAMES)}
        loader.run(**EVERY_RUN)
        for name in NAMES:
            assert_warehouse_equals(loader, name)  # live rows equal Copper's records
            rows = {r["id"]: r for r in loader.rows(name)}
            for record_id in deleted[name]:  # soft: kept, with when we noticed
                assert rows[record_id]["_copper_deleted_at"] is not None, (name, record_id)
        log = loader.rows("_copper_deletions")
        assert sorted((r["entity"], r["id"]) for r in log) == sorted(
            (name, i) for name, ids in deleted.items() for i in ids
        )
        assert {r["detected_by"] for r in log} == {"reconciliation"}

        loader.run(**EVERY_RUN)  # nothing new: nothing logged twice
        assert len(loader.rows("_copper_deletions")) == len(log)


def test_reconciling_costs_one_count_per_entity_when_nothing_was_deleted(serve, tmp_path):
    account = SandboxAccount.generate(seed=52, scale=0.1)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run()
        running.admin("POST", "/stats/reset")
        loader.run(**EVERY_RUN)
        for name in NAMES:  # the incremental search, and one count
            assert searches(running, name) == 2, name
        columns = loader.query(
            "select column_name from information_schema.columns where table_name = "
            "'_copper_deletions' and column_name not like '\\_dlt%' escape '\\'"
        )  # the log exists before any deletion, with its own columns only
        assert sorted(c["column_name"] for c in columns) == [
            "detected_at", "detected_by", "entity", "id"
        ]  # fmt: skip


def test_a_deleted_record_that_comes_back_is_live_again(serve, tmp_path):
    account = SandboxAccount.generate(seed=53, scale=0.05)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run(**EVERY_RUN)
        record = account.snapshot("people")[5]
        account.delete("people", record["id"])
        loader.run(**EVERY_RUN)
        assert record["id"] not in {r["id"] for r in loader.live_rows("people")}
        account.tables["people"].put({**record, "date_modified": account.clock.now()})
        loader.run(**EVERY_RUN)
        assert_warehouse_equals(loader, "people")
        row = next(r for r in loader.rows("people") if r["id"] == record["id"])
        assert row["_copper_deleted_at"] is None


def test_hard_deletes_remove_rows_and_their_child_rows(serve, tmp_path):
    account = SandboxAccount.generate(seed=54, scale=0.05)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run(deletes="hard", **EVERY_RUN)
        gone = delete_some(account, "people", 4)
        loader.run(deletes="hard", **EVERY_RUN)
        assert_warehouse_equals(loader, "people")
        assert len(loader.rows("people")) == len(account.snapshot("people"))
        sql = "select count(*) as n from {dataset}.people__emails e join {dataset}.people p "
        orphans = loader.query(
            "select count(*) as n from {dataset}.people__emails e where not exists "
            "(select 1 from {dataset}.people p where p._dlt_id = e._dlt_parent_id)"
        )
        assert orphans == [{"n": 0}], sql
        assert {r["id"] for r in loader.rows("_copper_deletions")} == set(gone)


def test_the_full_sweep_finds_what_counts_cannot(serve, tmp_path):
    """A deletion and an unseen record in one range leave the count unchanged; the sweep,
    which lists every id, still finds the deletion."""
    account = SandboxAccount.generate(seed=55, scale=0.05, counts={"companies": 3000})
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run(entities=["companies"], **EVERY_RUN)
        records = account.snapshot("companies")
        account.delete("companies", records[10]["id"])
        # a record the warehouse never saw, created (long ago) right beside it, unmodified
        twin = {**records[11], "id": records[11]["id"] + 1_000_000, "name": "Twin"}
        account.tables["companies"].put(twin)
        cursor_state = loader.pipeline.state["sources"]["copper"]["resources"]["companies"]
        assert twin["date_modified"] < cursor_state["cursor"]  # the cursor cannot see it
        loader.run(entities=["companies"], **EVERY_RUN)
        assert records[10]["id"] in {r["id"] for r in loader.live_rows("companies")}  # hidden
        loader.run(entities=["companies"], reconcile="full")
        assert_warehouse_equals(loader, "companies")
        log = loader.rows("_copper_deletions")
        assert [(r["id"], r["detected_by"]) for r in log] == [(records[10]["id"], "full sweep")]


@pytest.mark.slow
def test_a_range_past_100000_records_with_a_few_deletions(serve, tmp_path):
    n = 120_000
    account = SandboxAccount.generate(seed=56, scale=0.01, counts={"companies": n})
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run(entities=["companies"])
        delete_some(account, "companies", 5)
        running.admin("POST", "/stats/reset")
        loader.run(entities=["companies"], **EVERY_RUN)
        assert_warehouse_equals(loader, "companies")
        cost = searches(running, "companies")
        assert cost < math.ceil(n / 200) / 5, cost  # far below re-listing everything


def test_deletes_while_a_run_pages_in_every_entity(serve, tmp_path):
    """Copper deletes records while the run reads them: after the run, every live row is a
    record Copper has, or one it deleted during the run; the next run is exact."""
    account = SandboxAccount.generate(seed=57, scale=0.2)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        first_seen = account.snapshot("activities")
        running.admin("POST", "/config", {"chaos_deletes": 1, "chaos_edits": 2})
        for _ in range(2):  # the first load, then an incremental run
            started = account.clock.now()
            loader.run(max_window_records=400, **EVERY_RUN)  # small windows, many searches
            for name in NAMES:
                chaos = {d["id"] for d in running.admin("GET", f"/deleted/{name}?source=chaos")}
                assert chaos, name  # the scenario happened for every entity
                live = {r["id"] for r in loader.live_rows(name)}
                # records edited while the run ran may wait for the next run (its upper bound)
                settled = {r["id"] for r in account.snapshot(name) if r["date_modified"] < started}
                truth = {r["id"] for r in account.snapshot(name)}
                assert settled <= live, (name, settled - live)  # nothing that exists is missing
                assert live - truth <= chaos, name  # ... and nothing Copper did not delete
        running.admin("POST", "/config", {"chaos_deletes": 0, "chaos_edits": 0})
        loader.run(**EVERY_RUN)
        for name in NAMES[:-1]:
            assert_warehouse_equals(loader, name)
        # every activity, and none deleted; an edit to one dated before the lookback may wait
        # for a full sweep (counts match when only a stamp changed)
        assert_activities_equal_within_lookback(loader, first_seen)


def test_converted_leads_stay_leads_and_their_person_arrives(serve, tmp_path):
    account = SandboxAccount.generate(seed=58, scale=0.05)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run(**EVERY_RUN)
        lead = account.snapshot("leads")[0]
        with httpx.Client(base_url=running.base_url, headers=copper_headers(running)) as http:
            body = {"details": {"person": {"name": "Converted Person"}}}
            converted = http.post(f"/leads/{lead['id']}/convert", json=body)
            converted.raise_for_status()
        loader.run(**EVERY_RUN)
        assert_warehouse_equals(loader, "leads")  # converted leads are records, not deletions
        assert_warehouse_equals(loader, "people")
        row = next(r for r in loader.rows("leads") if r["id"] == lead["id"])
        assert row["converted_timestamp"] is not None and row["_copper_deleted_at"] is None
        person = converted.json()["person"]["id"]
        assert person in {r["id"] for r in loader.live_rows("people")}
        assert loader.rows("_copper_deletions") == []


def test_a_record_restored_under_its_id_after_a_soft_delete_is_live(serve, tmp_path):
    account = SandboxAccount.generate(seed=59, scale=0.05)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run(**EVERY_RUN)
        task = account.snapshot("tasks")[2]["id"]
        with httpx.Client(base_url=running.base_url, headers=copper_headers(running)) as http:
            http.delete(f"/tasks/{task}").raise_for_status()
        loader.run(**EVERY_RUN)
        assert task not in {r["id"] for r in loader.live_rows("tasks")}
        running.admin("POST", f"/records/tasks/{task}/restore")
        loader.run(**EVERY_RUN)
        assert_warehouse_equals(loader, "tasks")
        assert [r["id"] for r in loader.rows("_copper_deletions")] == [task]  # history kept

"""The warehouse equals the sandbox after every run: full, incremental, under chaos and faults."""

from __future__ import annotations

import logging

import pytest

from copper.settings import ENTITIES
from copper_sandbox import SandboxAccount

from .warehouse import (
    Loader,
    assert_activities_equal_within_lookback,
    assert_warehouse_equals,
    epoch,
)

NAMES = [e.name for e in ENTITIES]


def assert_all_equal(loader: Loader) -> None:
    for name in NAMES:
        assert_warehouse_equals(loader, name)


def test_full_load_then_incremental_loads_equal_the_sandbox(serve, tmp_path):
    account = SandboxAccount.generate(seed=21, scale=0.2)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run()
        assert_all_equal(loader)

        people = account.snapshot("people")
        account.update("people", people[0]["id"], {"title": "Head of Exactness"})
        account.update("opportunities", account.snapshot("opportunities")[3]["id"],
                       {"status": "Won"})  # fmt: skip
        created = account.create("companies", {"name": "Newco"})
        account.delete("tasks", account.snapshot("tasks")[0]["id"])
        loader.run(reconcile_every_hours=0)
        assert_all_equal(loader)
        assert created["id"] in {r["id"] for r in loader.rows("companies")}
        titles = {r["id"]: r["title"] for r in loader.rows("people")}
        assert titles[people[0]["id"]] == "Head of Exactness"


def test_a_no_change_run_makes_one_search_per_entity(serve, tmp_path):
    with serve(SandboxAccount.generate(seed=3, scale=0.1)) as running:
        loader = Loader(tmp_path, running)
        loader.run()
        running.admin("POST", "/stats/reset")
        loader.run()
        by_path = running.stats()["by_path"]
    for name in NAMES:
        assert by_path.get(f"POST /{name}/search") == 1, (name, by_path)
    assert by_path["GET /custom_field_definitions"] == 1


def test_records_changed_during_the_run_are_caught_next_run(serve, tmp_path):
    account = SandboxAccount.generate(seed=8, scale=0.2)
    with serve(account, chaos_edits=1.5, seed=8) as running:
        loader = Loader(tmp_path, running)
        before = {name: account.snapshot(name) for name in NAMES}
        loader.run(max_window_records=300)  # many windows, walked in parallel
        for name in NAMES:
            after = {r["id"]: r for r in account.snapshot(name)}
            untouched = [r for r in before[name] if after[r["id"]] == r]
            rows = {r["id"]: r for r in loader.rows(name)}
            for record in untouched:
                assert record["id"] in rows, f"{name} {record['id']} lost under chaos"
                assert epoch(rows[record["id"]]["date_modified"]) == record["date_modified"]
        running.sandbox.config.update(chaos_edits=0)
        loader.run()
        for name in NAMES[:-1]:
            assert_warehouse_equals(loader, name)
        assert_activities_equal_within_lookback(loader, before["activities"])


def test_transient_faults_are_retried_and_lose_nothing(serve, tmp_path):
    script = {2: "503", 5: "truncated", 7: "reset", 9: "500", 12: "502", 14: "hang"}
    account = SandboxAccount.generate(seed=4, scale=0.1)
    with serve(account, scripted_faults=script, hang_seconds=3) as running:
        loader = Loader(tmp_path, running)
        source_options = {"request_timeout": 1.0, "max_backoff": 0.2}
        loader.run(**source_options)
        assert_all_equal(loader)
        statuses = running.stats()["by_status"]
    assert statuses.get("503") == 1 and statuses.get("500") == 1 and statuses.get("502") == 1


def test_a_429_storm_is_waited_out(serve, tmp_path):
    account = SandboxAccount.generate(seed=5, scale=0.05)
    with serve(account, requests_per_window=8, window_seconds=1.0) as running:
        loader = Loader(tmp_path, running)
        loader.run(requests_per_minute=100_000, max_backoff=0.5)  # deliberately too fast
        assert_all_equal(loader)
        assert running.stats()["by_status"].get("429", 0) > 0


def test_a_server_that_ignores_the_modified_filter_is_filtered_on_our_side(serve, tmp_path, caplog):
    account = SandboxAccount.generate(seed=6, scale=0.05)
    ignored = {"people": ["minimum_modified_date"]}
    with serve(account, ignored_filters=ignored) as running:
        loader = Loader(tmp_path, running)
        loader.run()
        account.update("people", account.snapshot("people")[5]["id"], {"title": "Changed"})
        with caplog.at_level(logging.WARNING, logger="copper"):
            loader.run()
        assert_warehouse_equals(loader, "people")
    assert any("outside the requested" in m for m in caplog.messages)


def test_bad_credentials_fail_fast_with_a_clear_message_and_no_state(serve, tmp_path):
    from copper import CopperAuthError

    with serve() as running:
        running.api_key = "not-the-key"
        loader = Loader(tmp_path, running)
        with pytest.raises(CopperAuthError) as err:
            loader.run()
        assert running.stats()["requests"] == 1
    message = str(err.value)
    assert "401" in message and "api_key" in message and "not-the-key" not in message
    assert not loader.db_path.exists() or not loader.tables()
    assert loader.pipeline.state.get("sources", {}) == {}


def test_walks_split_while_running_lose_and_duplicate_nothing(serve, tmp_path, caplog):
    """Idle workers take halves of running walks (min_split_records tiny), under chaos."""
    account = SandboxAccount.generate(seed=18, scale=0.3)
    with serve(account, chaos_edits=1.0, seed=18) as running:
        loader = Loader(tmp_path, running)
        before = {name: account.snapshot(name) for name in NAMES}
        with caplog.at_level(logging.INFO, logger="copper"):
            loader.run(min_split_records=300, window_workers=4)
        splits = sum("splitting a walk" in m for m in caplog.messages)
        for name in NAMES[:-1]:
            after = {r["id"]: r for r in account.snapshot(name)}
            rows = {r["id"]: r for r in loader.rows(name)}
            for record in before[name]:
                if after[record["id"]] == record:
                    assert record["id"] in rows, f"{name} {record['id']} lost"
        running.sandbox.config.update(chaos_edits=0)
        loader.run(min_split_records=300, window_workers=4)
        for name in NAMES[:-1]:
            assert_warehouse_equals(loader, name)
    assert splits >= 1  # how many depends on timing; that walks were split does not


def test_a_record_changed_again_within_the_cursor_second_is_reloaded(serve, tmp_path):
    """dlt's incremental would drop a row at the boundary second whose key it has seen; the
    source turns that deduplication off, so the second version wins."""
    account = SandboxAccount.generate(seed=19, scale=0.05)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        person = account.update("people", account.snapshot("people")[0]["id"], {"title": "v1"})
        loader.run(entities=["people"])
        second = {**person, "title": "v2"}  # same date_modified: edited again that second
        account.tables["people"].put(second)
        loader.run(entities=["people"])
        titles = {r["id"]: r["title"] for r in loader.rows("people")}
    assert titles[person["id"]] == "v2"


def test_a_value_cleared_in_copper_becomes_null_in_the_warehouse(serve, tmp_path):
    """The source leaves unset values out of its rows (dlt gives them NULL); a row merged on
    id replaces the old one whole, so clearing a field or a custom field is not lost."""
    account = SandboxAccount.generate(seed=23, scale=0.05)
    text_field = next(
        d for d in account.custom_field_definitions()
        if d["data_type"] == "URL" and "person" in d["available_on"]
    )  # fmt: skip
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        person = account.snapshot("people")[0]
        account.update("people", person["id"], {
            "title": "Chief Tidiness Officer",
            "custom_fields": [{"custom_field_definition_id": text_field["id"], "value": "https://x.example"}],
        })  # fmt: skip
        loader.run(entities=["people"])
        column = loader.pipeline.state["sources"]["copper"]["custom_field_columns"]
        column = column[str(text_field["id"])]
        row = next(r for r in loader.rows("people") if r["id"] == person["id"])
        assert (row["title"], row[column]) == ("Chief Tidiness Officer", "https://x.example")

        account.update("people", person["id"], {
            "title": None,
            "custom_fields": [{"custom_field_definition_id": text_field["id"], "value": None}],
        })  # fmt: skip
        loader.run(entities=["people"])
        row = next(r for r in loader.rows("people") if r["id"] == person["id"])
        assert (row["title"], row[column]) == (None, None)
        assert_warehouse_equals(loader, "people")


def test_documented_reference_columns_exist_even_when_every_row_is_null(serve, tmp_path):
    """`account.logo` and `custom_field_definitions.canonical_name` are typed up front: the
    columns exist (dlt would otherwise drop them and warn) for queries that name them."""
    with serve() as running:
        loader = Loader(tmp_path, running)
        loader.run(entities=["projects"])
        assert loader.query("select logo from {dataset}.account") is not None
        assert loader.query("select canonical_name from {dataset}.custom_field_definitions")

"""Activities: read by activity_date (future-dated ones too), with a lookback for backdated
ones, and the cursor never past the run's start."""

from __future__ import annotations

import time

from copper_sandbox import SandboxAccount

from .warehouse import Loader, assert_warehouse_equals


def activity_cursor(loader: Loader) -> int:
    return loader.pipeline.state["sources"]["copper"]["resources"]["activities"]["cursor"]


def test_backdated_and_future_dated_activities(serve, tmp_path):
    account = SandboxAccount.generate(seed=31, scale=0.1)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        opportunity = account.snapshot("opportunities")[0]["id"]
        now = int(time.time())
        account.add_activity("opportunity", opportunity, now - 3600)  # the cursor is near now
        meeting = account.add_activity("opportunity", opportunity, now + 3 * 86_400)
        loader.run(entities=["activities"])
        assert meeting["id"] in {r["id"] for r in loader.rows("activities")}
        assert activity_cursor(loader) <= now + 60  # the future never moves the cursor

        future = account.add_activity("opportunity", opportunity, now + 10 * 86_400)
        backdated = account.add_activity("opportunity", opportunity, now - 12 * 86_400)
        too_old = account.add_activity("opportunity", opportunity, now - 40 * 86_400)
        started = int(time.time())
        loader.run(entities=["activities"])
        ids = {r["id"] for r in loader.rows("activities")}
        assert backdated["id"] in ids  # within the 30-day lookback
        assert future["id"] in ids  # exists now, so it is in the replica now
        assert too_old["id"] not in ids  # beyond the lookback, until the reconciliation
        assert activity_cursor(loader) <= started + 1

        # the reconciliation counts activities per range of activity_date and finds it
        loader.run(entities=["activities"], reconcile_every_hours=0)
        assert too_old["id"] in {r["id"] for r in loader.rows("activities")}
        assert_warehouse_equals(loader, "activities")


def test_a_no_change_run_checks_a_long_lookback_with_one_count(serve, tmp_path):
    """More activities in the lookback than a page holds: a run in which none changed is one
    search for them (newest first, its X-PW-TOTAL against the warehouse's rows); a backdated
    one changes the count and the lookback is walked; an edit in place changes no count and
    is read when the lookback is next re-read, as often as the reconciliation runs."""
    account = SandboxAccount.generate(seed=32, scale=0.05)
    opportunity = account.snapshot("opportunities")[0]["id"]
    now = int(time.time())
    recent = [
        account.add_activity("opportunity", opportunity, now - 86_400 * (1 + i % 20))
        for i in range(450)
    ]
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run(entities=["activities"])
        running.admin("POST", "/stats/reset")
        loader.run(entities=["activities"])
        assert running.stats()["by_path"]["POST /activities/search"] == 1

        backdated = account.add_activity("opportunity", opportunity, now - 15 * 86_400)
        loader.run(entities=["activities"])
        assert backdated["id"] in {r["id"] for r in loader.rows("activities")}

        account.update("activities", recent[0]["id"], {"details": "fixed"})
        loader.run(entities=["activities"], reconcile_every_hours=0)  # the lookback's turn
        details = {r["id"]: r["details"] for r in loader.rows("activities")}
        assert details[recent[0]["id"]] == "fixed"
        assert_warehouse_equals(loader, "activities")

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

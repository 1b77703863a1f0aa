"""Activities: read by activity_date, capped at run start, with a lookback for backdated ones."""

from __future__ import annotations

import time

from copper_sandbox import SandboxAccount

from .warehouse import Loader, assert_warehouse_equals


def activity_cursor(loader: Loader) -> int:
    resources = loader.pipeline.state["sources"]["copper"]["resources"]
    return resources["activities"]["incremental"]["activity_date"]["last_value"]


def test_backdated_and_future_dated_activities(serve, tmp_path):
    account = SandboxAccount.generate(seed=31, scale=0.1)
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        opportunity = account.snapshot("opportunities")[0]["id"]
        now = int(time.time())
        account.add_activity("opportunity", opportunity, now - 3600)  # the cursor is near now
        loader.run(entities=["activities"])
        future = account.add_activity("opportunity", opportunity, now + 10 * 86_400)
        backdated = account.add_activity("opportunity", opportunity, now - 12 * 86_400)
        too_old = account.add_activity("opportunity", opportunity, now - 40 * 86_400)
        started = int(time.time())
        loader.run(entities=["activities"])
        ids = {r["id"] for r in loader.rows("activities")}
        assert backdated["id"] in ids  # within the 30-day lookback
        assert future["id"] not in ids  # not yet happened: read once its date has passed
        assert too_old["id"] not in ids  # beyond the lookback: documented limit
        assert activity_cursor(loader) <= started + 1  # the future never moves the cursor

        loader.run(entities=["activities"], activity_lookback_days=60)
        assert too_old["id"] in {r["id"] for r in loader.rows("activities")}
        truth = [a for a in account.snapshot("activities") if a["activity_date"] <= now]
        assert_warehouse_equals(loader, "activities", truth)

"""Webhooks as the fast path: a run applies the deletes and updates Copper notified, and the
reconciliation still catches what a lost notification never said."""

from __future__ import annotations

import time
from pathlib import Path

import dlt

from copper_sandbox import RunningSandbox, SandboxAccount
from pipelines.runner import RunOptions, run
from pipelines.webhook_inbox import Inbox

from .test_webhooks import certificate, cli_receiver, hooks_cli
from .warehouse import Loader, assert_warehouse_equals


def options(tmp_path: Path, running: RunningSandbox, **settings) -> RunOptions:
    return RunOptions(
        duckdb_path=tmp_path / "copper_warehouse.duckdb",  # the receiver's inbox is beside it
        pipelines_dir=tmp_path / "pipelines",
        progress_every=3600,
        source_options={
            "api_key": running.api_key,
            "user_email": running.user_email,
            "base_url": running.base_url,
            "requests_per_minute": 100_000,
        },
        **settings,
    )


def wait_for_delivery(running: RunningSandbox, sent: int) -> None:
    notifier = running.sandbox.notifier
    deadline = time.monotonic() + 30
    while (
        notifier.stats()["pending"] or notifier.stats()["sent"] + notifier.stats()["dropped"] < sent
    ):
        assert time.monotonic() < deadline, notifier.stats()
        time.sleep(0.1)


def warehouse(tmp_path: Path, running: RunningSandbox) -> Loader:
    """Reads the warehouse `run` writes (its pipeline name, dir and DuckDB file)."""
    loader = Loader(tmp_path, running, name="copper")
    loader.pipeline = dlt.pipeline(
        pipeline_name="copper",
        pipelines_dir=str(tmp_path / "pipelines"),
        destination=dlt.destinations.duckdb(str(tmp_path / "copper_warehouse.duckdb")),
        dataset_name="copper",
    )
    return loader


def test_a_run_applies_webhook_deletes_and_the_reconciliation_catches_lost_ones(serve, tmp_path):
    ca_file, cert, key = certificate(tmp_path)
    account = SandboxAccount.generate(seed=62, scale=0.05)
    config = {"webhook_ca_file": str(ca_file), "webhook_drop_rate": 0.0}
    tls = ("--certfile", str(cert), "--keyfile", str(key))
    with (
        serve(account, webhook_batch_seconds=0.2, **config) as running,
        cli_receiver(tmp_path, *tls, scheme="https", verify=str(ca_file)) as (url, _),
    ):
        subscribed = hooks_cli("subscribe", "--target", f"{url}/copper/webhooks",
                               cwd=tmp_path, running=running)  # fmt: skip
        assert subscribed.returncode == 0, subscribed.stderr
        run(options(tmp_path, running, reconcile="off"))

        person = account.snapshot("people")[1]["id"]
        activity = account.snapshot("activities")[4]["id"]
        account.delete("people", person)
        account.delete("activities", activity)
        wait_for_delivery(running, 2)
        report = run(options(tmp_path, running, reconcile="off"))  # webhooks alone
        loader = warehouse(tmp_path, running)
        assert_warehouse_equals(loader, "people")
        assert_warehouse_equals(loader, "activities")
        log = {(r["entity"], r["id"]): r["detected_by"] for r in loader.rows("_copper_deletions")}
        assert log == {("people", person): "webhook", ("activities", activity): "webhook"}
        with Inbox.for_warehouse("duckdb", tmp_path / "copper_warehouse.duckdb", "copper") as inbox:
            assert inbox.pending() == []  # applied, loaded, then pruned
        assert report.requests < 60  # the ids were checked, not the whole account re-listed
        applied = loader.rows("_copper_webhook_events")
        assert {(e["type"], e["event"]) for e in applied} >= {
            ("person", "delete"),
            ("activity_log", "delete"),
        }

        # a notification Copper lost: only the reconciliation sees that deletion
        running.admin("POST", "/config", {"webhook_drop_rate": 1.0})
        task = account.snapshot("tasks")[0]["id"]
        account.delete("tasks", task)
        wait_for_delivery(running, 3)
        run(options(tmp_path, running, reconcile="off"))
        assert task in {r["id"] for r in loader.live_rows("tasks")}
        run(options(tmp_path, running, reconcile_every_hours=0))
        for name in ("people", "tasks", "activities", "companies", "leads"):
            assert_warehouse_equals(loader, name)
        assert ("tasks", task, "reconciliation") in {
            (r["entity"], r["id"], r["detected_by"]) for r in loader.rows("_copper_deletions")
        }

"""What finding deletions costs: requests of the reconciliation against a full re-list.

    .venv/bin/python benchmarks/reconcile.py [--records 250000] [--deletions 0,10,1000]

One entity (companies) of N records is loaded; then, for each count, that many random records
are deleted in the sandbox and a run reconciles by counts (`reconcile="counts"`). A last run
does the full id sweep (`reconcile="full"`). Each row: the searches the run made beyond the
incremental one, against re-listing everything (sum of ceil(N/200)), and whether the warehouse's
live rows then equal the sandbox's records.
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from pathlib import Path

import dlt

from copper import copper_source, mark_deletions
from copper_sandbox import Sandbox, SandboxAccount, SandboxConfig, serve_in_thread
from pipelines.runner import LOADER_FORMAT
from pipelines.tuning import tuned_for_throughput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=250_000)
    parser.add_argument("--deletions", default="0,10,1000")
    args = parser.parse_args()
    counts = [int(c) for c in args.deletions.split(",")]
    n = args.records
    account = SandboxAccount.generate(seed=71, scale=0.01, counts={"companies": n})
    rows = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve_in_thread(Sandbox(account, SandboxConfig(requests_per_window=10**9))) as running,
    ):
        pipeline = dlt.pipeline(
            pipeline_name="reconcile_bench",
            pipelines_dir=str(Path(tmp) / "pipelines"),
            destination=dlt.destinations.duckdb(str(Path(tmp) / "bench.duckdb")),
            dataset_name="copper",
        )

        def run(**options) -> tuple[int, float]:
            running.admin("POST", "/stats/reset")
            started = time.monotonic()
            source = copper_source(
                api_key=running.api_key,
                user_email=running.user_email,
                base_url=running.base_url,
                requests_per_minute=10**9,
                entities=["companies"],
                **options,
            )
            with tuned_for_throughput():
                pipeline.run(source, loader_file_format=LOADER_FORMAT["duckdb"])
            mark_deletions(pipeline)
            searches = running.stats()["by_path"].get("POST /companies/search", 0)
            return searches, time.monotonic() - started

        def exact() -> bool:
            with pipeline.sql_client() as client:
                live = {r[0] for r in client.execute_sql(
                    "select id from companies where _copper_deleted_at is null")}  # fmt: skip
            return live == {r["id"] for r in account.snapshot("companies")}

        run(reconcile="off")
        relist = math.ceil(n / 200)
        rng = random.Random(5)
        for count in counts:
            for record_id in rng.sample([r["id"] for r in account.snapshot("companies")], count):
                account.delete("companies", record_id)
            searches, seconds = run(reconcile_every_hours=0)
            rows.append((f"counts, {count:,} deleted", searches - 1, relist, seconds, exact()))
        searches, seconds = run(reconcile="full")
        rows.append(("full id sweep, 0 deleted", searches - 1, relist, seconds, exact()))

    print(f"\n{n:,} companies; a full re-list is {math.ceil(n / 200):,} searches\n")
    print("| reconciliation | searches | vs re-list | share | run s | live rows exact |")
    print("|---|---|---|---|---|---|")
    for label, searches, relist, seconds, ok in rows:
        print(f"| {label} | {searches:,} | {relist:,} | {searches / relist:.1%} | "
              f"{seconds:.1f} | {'yes' if ok else 'NO'} |")  # fmt: skip


if __name__ == "__main__":
    main()

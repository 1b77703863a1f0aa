"""Peer "this project": `copper.copper_source` into a fresh DuckDB via dlt.

Run by `benchmarks/run.py` with the project's venv; prints one JSON line on stdout:
{"seconds": float, "entities": {entity: [ids]}, "notes": [str]}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ENTITIES = ("people", "companies", "leads", "opportunities", "projects", "tasks", "activities")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--user-email", required=True)
    parser.add_argument("--k", type=float, required=True, help="time compression of the limits")
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

    import dlt
    import duckdb

    from copper import ClientStats, copper_source
    from pipelines.runner import LOADER_FORMAT
    from pipelines.tuning import tuned_for_throughput

    workdir = Path(args.workdir)
    db_path = workdir / "this_project.duckdb"
    pipeline = dlt.pipeline(
        "bench_this_project",
        pipelines_dir=str(workdir / "pipelines"),
        destination=dlt.destinations.duckdb(str(db_path)),
        dataset_name="copper",
    )
    stats = ClientStats()
    source = copper_source(
        api_key=args.api_key,
        user_email=args.user_email,
        base_url=args.base_url,
        requests_per_minute=round(180 * args.k),
        rate_limit_window=60 / args.k,
        stats=stats,
    )
    with tuned_for_throughput():  # as `copper-pipeline run` does
        started = time.monotonic()
        pipeline.extract(source, loader_file_format=LOADER_FORMAT["duckdb"])
        extracted = time.monotonic()
        pipeline.normalize()
        normalized = time.monotonic()
        pipeline.load().raise_on_failed_jobs()
        seconds = time.monotonic() - started
    steps = (
        f"dlt steps: extract {extracted - started:.1f} s, normalize {normalized - extracted:.1f} s,"
        f" load {started + seconds - normalized:.1f} s"
    )

    entities: dict[str, list[int]] = {}
    with duckdb.connect(str(db_path), read_only=True) as con:
        tables = {r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'copper'"
        ).fetchall()}  # fmt: skip
        for entity in ENTITIES:
            if entity in tables:
                rows = con.execute(f"select id from copper.{entity}").fetchall()
                entities[entity] = [int(r[0]) for r in rows]
            else:
                entities[entity] = []
    waits, waited = stats.budget_waits
    notes = [
        steps,
        f"client counted {stats.requests} requests, {stats.retries} retries; "
        f"{waits} requests waited {waited:.1f} s in all for the request budget",
    ]
    print(json.dumps({"seconds": seconds, "entities": entities, "notes": notes}), flush=True)


if __name__ == "__main__":
    main()

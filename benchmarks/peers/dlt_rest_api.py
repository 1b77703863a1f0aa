"""Peer "dlt rest_api, an afternoon's config": dlt's declarative REST source, set up the way a
dlt user would after reading Copper's docs for an afternoon, into its own DuckDB file.

One resource per entity (`POST /{entity}/search`, body `{"page_size": 200}`), page-number
paging in the JSON body until an empty page, the three X-PW headers, write_disposition
replace, and no rate-limit handling beyond dlt's default retries (5 attempts, exponential
backoff, Retry-After honoured when sent).

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


def afternoon_config(base_url: str, api_key: str, user_email: str) -> dict:
    """The RESTAPIConfig: what the dlt docs lead to for Copper's POST /search endpoints."""
    return {
        "client": {
            "base_url": base_url.rstrip("/") + "/",
            "headers": {
                "X-PW-AccessToken": api_key,
                "X-PW-UserEmail": user_email,
                "X-PW-Application": "developer_api",
            },
            "paginator": {
                "type": "page_number",
                "base_page": 1,
                "page_body_path": "page_number",
                "total_path": None,  # Copper's total is a header (X-PW-TOTAL), not in the body
                "stop_after_empty_page": True,
            },
        },
        "resource_defaults": {
            "primary_key": "id",
            "write_disposition": "replace",
            "endpoint": {"method": "POST", "json": {"page_size": 200}},
        },
        "resources": [
            {"name": entity, "endpoint": {"path": f"{entity}/search"}} for entity in ENTITIES
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--user-email", required=True)
    parser.add_argument("--k", type=float, default=1.0, help="unused: no rate-limit handling")
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

    import dlt
    import duckdb
    from dlt.sources.rest_api import rest_api_source

    workdir = Path(args.workdir)
    db_path = workdir / "dlt_rest_api.duckdb"
    pipeline = dlt.pipeline(
        "bench_rest_api",
        pipelines_dir=str(workdir / "pipelines"),
        destination=dlt.destinations.duckdb(str(db_path)),
        dataset_name="copper_rest_api",
    )
    source = rest_api_source(afternoon_config(args.base_url, args.api_key, args.user_email))
    started = time.monotonic()
    pipeline.extract(source)
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
            "select table_name from information_schema.tables "
            "where table_schema = 'copper_rest_api'"
        ).fetchall()}  # fmt: skip
        for entity in ENTITIES:
            if entity in tables:
                rows = con.execute(f"select id from copper_rest_api.{entity}").fetchall()
                entities[entity] = [int(r[0]) for r in rows]
            else:
                entities[entity] = []
    print(json.dumps({"seconds": seconds, "entities": entities, "notes": [steps]}), flush=True)


if __name__ == "__main__":
    main()

"""Budget efficiency and request economy against Copper's limits, scaled in time by k.

    .venv/bin/python benchmarks/budget.py [--k 10] [--scale 8]

The sandbox allows 180 requests per rolling 60/k s and answers in (1 +- 0.3)/k s, Copper's
ratios sped up k times; the pipeline is told `requests_per_minute = 180 k` with a 60/k s
window. Figures: the request rate achieved during extraction against the allowed rate, 429s,
search requests against sum over entities of ceil(N / 200), and the requests of a no-change
incremental run. k = 1 is reality (slow: run it once).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import dlt

from copper import ClientStats, copper_source
from copper.settings import ENTITIES
from copper_sandbox import serve_in_subprocess
from pipelines.runner import LOADER_FORMAT
from pipelines.tuning import tuned_for_throughput

PAGE = 200


def run_once(running, k: float, root: Path, name: str) -> tuple[ClientStats, float]:
    pipeline = dlt.pipeline(
        name,
        pipelines_dir=str(root / "pipelines"),
        destination=dlt.destinations.duckdb(str(root / f"{name}.duckdb")),
        dataset_name="copper",
    )
    stats = ClientStats()
    source = copper_source(
        api_key=running.api_key,
        user_email=running.user_email,
        base_url=running.base_url,
        requests_per_minute=int(180 * k),
        rate_limit_window=60 / k,
        stats=stats,
    )
    pipeline.extract(source, loader_file_format=LOADER_FORMAT["duckdb"])
    starts = [e.started for e in stats.entities.values() if e.started]
    ends = [e.finished for e in stats.entities.values() if e.finished]
    seconds = max(ends) - min(starts)
    pipeline.normalize()
    pipeline.load().raise_on_failed_jobs()
    return stats, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--k", type=float, default=10.0)
    parser.add_argument("--scale", type=float, default=8.0, help="sandbox account size")
    args = parser.parse_args()
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    k, window = args.k, 60 / args.k
    serve_args = [
        "--scale", str(args.scale), "--rate-limit", "180", "--window", f"{window:.6f}",
        "--latency", f"{1 / k:.6f}", "--jitter", f"{0.3 / k:.6f}",
    ]  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix="copper-budget-"))
    with serve_in_subprocess(*serve_args) as running, tuned_for_throughput():
        counts = running.info["records"]
        started = time.monotonic()
        stats, seconds = run_once(running, k, root, "budget")
        wall = time.monotonic() - started
        full = running.stats()
        time.sleep(window)  # a fresh window for the incremental run
        running.admin("POST", "/stats/reset")
        again, _ = run_once(running, k, root, "budget")
        incremental = running.stats()

    allowed_rate = 180 / window
    achieved_rate = stats.requests / seconds
    searches = sum(v for p, v in full["by_path"].items() if p.endswith("/search"))
    entity_searches = sum(
        v for p, v in full["by_path"].items() if p.endswith("/search") and "users" not in p
    )
    minimum = sum(math.ceil(counts[e.name] / PAGE) for e in ENTITIES)

    def searches_of(entity: str) -> int:
        return full["by_path"].get(f"POST /{entity}/search", 0)

    no_change = {
        p.split("/")[1]: v for p, v in incremental["by_path"].items() if p.endswith("/search")
    }
    rows = [
        ("k (time scale)", f"{k:g}"),
        ("records in the account", f"{sum(counts.values()):,}"),
        ("requests (full load)", f"{stats.requests:,}"),
        ("extraction seconds (first request to last response)", f"{seconds:.1f}"),
        ("allowed request rate, per s", f"{allowed_rate:.2f}"),
        ("achieved request rate, per s", f"{achieved_rate:.2f}"),
        ("budget efficiency (achieved / allowed)", f"{achieved_rate / allowed_rate:.3f}"),
        ("429 responses (full load)", str(full["by_status"].get("429", 0))),
        ("waits on the request budget", f"{stats.budget_waits[0]:,}"),
        ("entity search requests", f"{entity_searches:,}"),
        ("sum ceil(N/200) over entities", f"{minimum:,}"),
        ("request economy (searches / minimum)", f"{entity_searches / minimum:.4f}"),
        (
            "searches over the minimum, per entity",
            ", ".join(
                f"{e.name} +{searches_of(e.name) - math.ceil(counts[e.name] / PAGE)}"
                for e in ENTITIES
            ),
        ),
        ("all searches incl. users", f"{searches:,}"),
        ("no-change run: searches per entity", ", ".join(f"{e} {n}" for e, n in no_change.items())),
        ("no-change run: all requests", f"{again.requests}"),
        ("end-to-end wall seconds (full load)", f"{wall:.1f}"),
        ("cores", str(os.cpu_count())),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"| {'figure':<{width}} | value |\n|{'-' * (width + 2)}|-------|")
    for key, value in rows:
        print(f"| {key:<{width}} | {value} |")


if __name__ == "__main__":
    main()

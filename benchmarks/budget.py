"""Budget efficiency and request economy against Copper's limits, scaled in time by k.

    .venv/bin/python benchmarks/budget.py [--k 10] [--scale 8 | --records 120000] [--runs 3]

The sandbox allows 180 requests per rolling 60/k s and answers in (1 +- 0.3)/k s, Copper's
ratios sped up k times; the pipeline is told `requests_per_minute = 180 k` with a 60/k s
window. Figures: the request rate achieved during extraction against the allowed rate, 429s,
search requests against sum over entities of ceil(N / 200), and the requests of a no-change
incremental run. k = 1 is reality (slow: run it once). `--runs N` repeats the full load
in fresh sandboxes and prints one column per run (timings on a shared machine are noisy).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import dlt

from copper import ClientStats, CopperClient, copper_source
from copper.settings import ENTITIES
from copper_sandbox import serve_in_subprocess
from copper_sandbox.generator import DEFAULT_COUNTS
from pipelines.runner import LOADER_FORMAT
from pipelines.tuning import tuned_for_throughput

PAGE = 200
RECONCILE_SEARCHES: list[int] = [0]  # searches made by the reconciliation (label "reconcile")
_search = CopperClient.search


def _counted_search(self, entity, body, context="", **options):  # type: ignore[no-untyped-def]
    if " reconcile " in context:
        RECONCILE_SEARCHES[0] += 1
    return _search(self, entity, body, context, **options)


CopperClient.search = _counted_search  # type: ignore[method-assign]


def run_once(running, k: float, root: Path, name: str, **options) -> tuple[ClientStats, float]:
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
        **options,
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
    parser.add_argument(
        "--records", type=int, default=None, help="account size in records (sets --scale)"
    )
    parser.add_argument("--runs", type=int, default=1, help="full loads, each in a fresh sandbox")
    parser.add_argument("--min-split-records", type=int, default=None, help="source setting")
    parser.add_argument("--window-workers", type=int, default=None, help="source setting")
    args = parser.parse_args()
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    scale = args.scale if args.records is None else args.records / sum(DEFAULT_COUNTS.values())
    options = {
        name: value
        for name, value in (
            ("min_split_records", args.min_split_records),
            ("window_workers", args.window_workers),
        )
        if value is not None
    }
    columns = [measure(args.k, scale, options) for _ in range(args.runs)]
    width = max(len(key) for key, _ in columns[0])
    print(f"| {'figure':<{width}} | " + " | ".join(f"run {i + 1}" for i in range(args.runs)) + " |")
    print(f"|{'-' * (width + 2)}|" + "|".join("-------" for _ in columns) + "|")
    for i, (key, _) in enumerate(columns[0]):
        print(f"| {key:<{width}} | " + " | ".join(col[i][1] for col in columns) + " |")


def measure(k: float, scale: float, options: dict) -> list[tuple[str, str]]:
    """One full load and one no-change run in a fresh sandbox: the figures, as table rows."""
    window = 60 / k
    serve_args = [
        "--scale", f"{scale:.6f}", "--rate-limit", "180", "--window", f"{window:.6f}",
        "--latency", f"{1 / k:.6f}", "--jitter", f"{0.3 / k:.6f}",
    ]  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix="copper-budget-"))
    RECONCILE_SEARCHES[0] = 0
    with serve_in_subprocess(*serve_args) as running, tuned_for_throughput():
        counts = running.info["records"]
        started = time.monotonic()
        stats, seconds = run_once(running, k, root, "budget", **options)
        wall = time.monotonic() - started
        full = running.stats()
        reconcile_searches = RECONCILE_SEARCHES[0]
        time.sleep(window)  # a fresh window for the incremental run
        running.admin("POST", "/stats/reset")
        again, _ = run_once(running, k, root, "budget", **options)
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
        ("of which the reconciliation's counts", str(reconcile_searches)),
        (
            "economy of the walks alone (reconciliation left out)",
            f"{(entity_searches - reconcile_searches) / minimum:.4f}",
        ),
        (
            "searches over the minimum, per entity",
            ", ".join(
                f"{e.name} +{searches_of(e.name) - math.ceil(counts[e.name] / PAGE)}"
                for e in ENTITIES
            ),
        ),
        ("all searches incl. users", f"{searches:,}"),
        (
            "no-change run: searches per entity",
            ", ".join(f"{e.name} {no_change.get(e.name, 0)}" for e in ENTITIES),
        ),
        ("no-change run: all requests", f"{again.requests}"),
        ("end-to-end wall seconds (full load)", f"{wall:.1f}"),
        ("cores", str(os.cpu_count())),
        ("load average (1 min) after the run", f"{os.getloadavg()[0]:.1f}"),
    ]
    return rows


if __name__ == "__main__":
    main()

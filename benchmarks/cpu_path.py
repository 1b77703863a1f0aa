"""The CPU path: how fast the pipeline turns Copper pages into DuckDB rows, and its memory.

    .venv/bin/python benchmarks/cpu_path.py [--records 100000 300000 1000000] [--profile]

The sandbox runs in its own process with no rate limit and no latency, so every second is the
pipeline's own work: HTTP + JSON decode, windows, custom-field pivot, dlt extract, normalize,
load. Each size runs in a fresh process so peak memory (max RSS) is comparable across sizes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECORDS_AT_SCALE_1 = 11_500  # the generator's default account size


def one_run(
    records: int,
    profile: bool,
    file_format: str | None = None,
    postgres: bool = False,
    tuned: bool = True,
    arrow: bool = True,
    processes: int = -1,
) -> dict:
    """Load an account of about `records` records; figures as a dict (run in a child)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pipelines.tuning import DLT_SETTINGS, tuned_for_throughput

    with contextlib.ExitStack() as stack:
        if tuned:  # as copper-pipeline runs
            stack.enter_context(tuned_for_throughput())
        else:  # dlt's defaults but jsonl: the settings' effect, for the README
            os.environ["NORMALIZE__WORKERS"] = DLT_SETTINGS["NORMALIZE__WORKERS"]
        if postgres:  # a throwaway local server, as the tests start one
            from tests.postgres import postgres_server

            url = stack.enter_context(postgres_server())
            return _one_run(records, profile, None, url, arrow, processes)
        return _one_run(records, profile, file_format, None, arrow, processes)


def _one_run(
    records: int,
    profile: bool,
    file_format: str | None,
    pg_url: str | None,
    arrow: bool,
    processes: int,
) -> dict:
    import dlt

    from copper import ClientStats, copper_source
    from copper_sandbox import serve_in_subprocess

    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    scale = records / RECORDS_AT_SCALE_1
    with serve_in_subprocess("--scale", f"{scale:.4f}", "--rate-limit", "0") as running:
        root = Path(tempfile.mkdtemp(prefix="copper-cpu-"))
        pipeline = dlt.pipeline(
            "copper_cpu",
            pipelines_dir=str(root / "pipelines"),
            destination=(
                dlt.destinations.postgres(pg_url)
                if pg_url
                else dlt.destinations.duckdb(str(root / "cpu.duckdb"))
            ),
            dataset_name="copper",
        )
        stats = ClientStats()
        source = copper_source(
            api_key=running.api_key,
            user_email=running.user_email,
            base_url=running.base_url,
            requests_per_minute=10**9,
            stats=stats,
            arrow_tables=arrow,
            arrow_processes=processes,
        )
        profiler = None
        if profile:
            from pyinstrument import Profiler

            profiler = Profiler()
            profiler.start()
        started = time.monotonic()
        cpu_started = _cpu_seconds()
        pipeline.extract(source, loader_file_format=file_format)
        extracted = time.monotonic()
        cpu_extract = _cpu_seconds() - cpu_started
        rss_extract = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        cpu_before_normalize = _cpu_seconds(resource.RUSAGE_CHILDREN) + _cpu_seconds()
        pipeline.normalize()
        normalized = time.monotonic()
        cpu_normalize = _cpu_seconds(resource.RUSAGE_CHILDREN) + _cpu_seconds()
        cpu_normalize -= cpu_before_normalize
        pipeline.load().raise_on_failed_jobs()
        loaded = time.monotonic()
        trace = pipeline.last_trace.last_normalize_info
        table_rows = sum(n for t, n in trace.row_counts.items() if not t.startswith("_dlt"))
        if profiler:
            profiler.stop()
            (root / "profile.txt").write_text(
                profiler.output_text(unicode=False, color=False, show_all=False, timeline=False)
            )
            profiler.last_session.save(str(root / "profile.pyisession"))
    entity_records = sum(e.records for name, e in stats.entities.items() if name not in ("users",))
    return {
        "records": entity_records,
        "table_rows": table_rows,
        "requests": stats.requests,
        "extract_s": extracted - started,
        "normalize_s": normalized - extracted,
        "load_s": loaded - normalized,
        "total_s": loaded - started,
        "records_per_s": entity_records / (loaded - started),
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "extract_rss_mb": rss_extract,
        "extract_cpu_s": cpu_extract,
        "normalize_cpu_s": cpu_normalize,
        "worker_cpu_s": stats.worker_cpu_seconds,
        "worker_rss_mb": stats.worker_peak_rss_mb,
        "profile": str(root / "profile.txt") if profile else "",
    }


def _cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """CPU seconds used by this process, or by its ended children (normalize workers)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--profile", action="store_true", help="pyinstrument the pipeline")
    parser.add_argument("--format", default="parquet", help="dlt loader file format for DuckDB")
    parser.add_argument("--postgres", action="store_true", help="load a local PostgreSQL instead")
    parser.add_argument(
        "--untuned", action="store_true", help="without pipelines.tuning (dlt's defaults)"
    )
    parser.add_argument(
        "--dicts", action="store_true", help="every record as a dict (arrow_tables=False)"
    )
    parser.add_argument("--duckdb-memory-limit", help="e.g. 512MB (DuckDB's default: 80%% of RAM)")
    parser.add_argument(
        "--arrow-processes", type=int, default=-1, help="source setting (-1: auto, 0: none)"
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.duckdb_memory_limit:  # dlt's own setting, inherited by the children
        os.environ["DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG"] = json.dumps(
            {"memory_limit": args.duckdb_memory_limit}
        )
    if args.child:
        figures = one_run(
            args.child, args.profile, args.format, args.postgres, not args.untuned, not args.dicts,
            args.arrow_processes,
        )  # fmt: skip
        print(json.dumps(figures))
        return
    rows = []
    for n in args.records:
        cmd = [sys.executable, __file__, "--child", str(n)]
        cmd += ["--format", args.format] if args.format else []
        flags = ("profile", "postgres", "untuned", "dicts")
        cmd += [f"--{flag}" for flag in flags if getattr(args, flag)]
        cmd += ["--arrow-processes", str(args.arrow_processes)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    header = ("records", "rows (child tables too)", "requests", "extract s",
              "extract CPU s", "worker CPU s", "normalize s", "normalize CPU s",
              "load s", "total s", "records/s", "peak RSS MB (extract)",
              "peak RSS MB (run)", "peak RSS MB (a worker)")  # fmt: skip
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for r in rows:
        print(
            f"{r['records']:,} | {r['table_rows']:,} | {r['requests']:,} | {r['extract_s']:.1f} | "
            f"{r['extract_cpu_s']:.1f} | {r['worker_cpu_s']:.1f} | {r['normalize_s']:.1f} | "
            f"{r['normalize_cpu_s']:.1f} | {r['load_s']:.1f} | {r['total_s']:.1f} | "
            f"{r['records_per_s']:,.0f} | {r['extract_rss_mb']:,.0f} | {r['max_rss_mb']:,.0f} | "
            f"{r['worker_rss_mb']:,.0f}"
        )
        if r["profile"]:
            print(f"  profile: {r['profile']}")
    print(f"\ncores: {os.cpu_count()}")


if __name__ == "__main__":
    main()

"""Which dlt loader file format loads Copper people into PostgreSQL fastest.

    .venv/bin/python benchmarks/postgres_load.py [--people 100000] [--postgres-url URL]

Extracts people once from an in-process sandbox (HTTP, custom field pivot: the real source),
then for each format copies the extracted package into a fresh pipeline directory, normalizes
and loads it into a fresh dataset, and times each step. Without `--postgres-url` (or
`COPPER_TEST_POSTGRES_URL`) it starts a throwaway server like the tests do. Prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dlt
import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.postgres

from copper import copper_source
from copper_sandbox import Sandbox, SandboxAccount, SandboxConfig, serve_in_thread
from tests.postgres import ENV_URL, postgres_server

FORMATS = ("insert_values", "csv", "parquet", "jsonl")
PIPELINE = "pg_load_bench"


@dataclass
class Result:
    """One format's figures, or why it did not run."""

    file_format: str
    rows: int = 0
    normalize_s: float = 0.0
    load_s: float = 0.0
    refused: str = ""


@contextlib.contextmanager
def server(url: str | None) -> Iterator[str]:
    """The given server, or a throwaway one."""
    if url:
        yield url
    else:
        with postgres_server() as started:
            yield started


def pipeline_in(root: Path, url: str, dataset: str) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name=PIPELINE,
        pipelines_dir=str(root),
        destination=dlt.destinations.postgres(url),
        dataset_name=dataset,
    )


def count_rows(url: str, dataset: str) -> int:
    """Rows in the dataset's data tables (dlt's own tables excluded)."""
    with contextlib.closing(psycopg2.connect(url)) as con, con.cursor() as cur:
        cur.execute(
            "select table_name from information_schema.tables "
            "where table_schema = %s and table_name not like '\\_dlt%%'",
            [dataset],
        )
        total = 0
        for (table,) in cur.fetchall():
            cur.execute(f'select count(*) from "{dataset}"."{table}"')
            total += cur.fetchone()[0]
        return total


def drop(url: str, dataset: str) -> None:
    with contextlib.closing(psycopg2.connect(url)) as con:
        con.autocommit = True
        with con.cursor() as cur:
            for schema in (dataset, f"{dataset}_staging"):
                cur.execute(f'drop schema if exists "{schema}" cascade')


def load_with(file_format: str, extracted: Path, work: Path, url: str) -> Result:
    """Normalize and load a copy of the extracted package, every table in `file_format`."""
    result = Result(file_format)
    dataset = f"bench_{file_format}_{uuid.uuid4().hex[:6]}"
    root = work / file_format
    shutil.copytree(extracted, root)
    pipeline = pipeline_in(root, url, dataset)
    caps = pipeline.destination.capabilities()
    if file_format not in caps.supported_loader_file_formats:
        result.refused = f"not supported; Postgres takes {caps.supported_loader_file_formats}"
        return result
    _, usable = caps.loader_file_format_selector(  # drops parquet without an ADBC driver
        caps.preferred_loader_file_format,
        list(caps.supported_loader_file_formats),
        table_schema={"name": "people"},
    )
    if file_format not in usable:
        result.refused = "needs pyarrow and adbc-driver-postgresql (not installed)"
        return result
    for table in pipeline.default_schema.tables.values():
        if not table["name"].startswith("_dlt") and "parent" not in table:
            table["file_format"] = file_format  # what `extract(loader_file_format=...)` sets
    started = time.perf_counter()
    normalized = pipeline.normalize()
    result.normalize_s = time.perf_counter() - started
    written = {
        job.job_file_info.file_format
        for package in normalized.load_packages
        for job in package.jobs["new_jobs"]
        if not job.job_file_info.table_name.startswith("_dlt")
    }
    if written != {file_format}:
        result.refused = f"dlt wrote {sorted(written)} instead"
        return result
    started = time.perf_counter()
    pipeline.load().raise_on_failed_jobs()
    result.load_s = time.perf_counter() - started
    result.rows = count_rows(url, dataset)
    drop(url, dataset)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--postgres-url", default=os.environ.get(ENV_URL))
    parser.add_argument("--formats", default=",".join(FORMATS))
    args = parser.parse_args()
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")  # dlt's per-table warnings are noise here

    account = SandboxAccount.generate(seed=0, scale=0.01, counts={"people": args.people})
    work = Path(tempfile.mkdtemp(prefix="copper-pg-bench-"))
    sandbox = Sandbox(account, SandboxConfig(requests_per_window=10**9))
    try:
        with serve_in_thread(sandbox) as running, server(args.postgres_url) as url:
            extractor = pipeline_in(work / "extracted", url, "unused")  # before the source
            source = copper_source(
                api_key=running.api_key,
                user_email=running.user_email,
                base_url=running.base_url,
                entities=["people"],
                requests_per_minute=10**9,
            )
            started = time.perf_counter()
            extractor.extract(source)
            extract_s = time.perf_counter() - started
            results = [load_with(f, work / "extracted", work, url) for f in args.formats.split(",")]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\npeople: {args.people:,}   extract (HTTP + pivot, once): {extract_s:.1f} s")
    print(f"cores: {os.cpu_count()}   end-to-end = rows / (extract + normalize + load)\n")
    header = ("format", "rows loaded", "normalize s", "load s", "load rows/s", "end-to-end rows/s")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in results:
        if r.refused:
            print(f"| {r.file_format} | refused: {r.refused} | | | | |")
            continue
        total = extract_s + r.normalize_s + r.load_s
        cells = (
            r.file_format,
            f"{r.rows:,}",
            f"{r.normalize_s:.1f}",
            f"{r.load_s:.1f}",
            f"{r.rows / r.load_s:,.0f}",
            f"{r.rows / total:,.0f}",
        )
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

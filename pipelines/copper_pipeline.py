"""Load Copper into DuckDB with dlt: the pipeline to copy when you write your own.

    export SOURCES__COPPER__API_KEY=...  SOURCES__COPPER__USER_EMAIL=you@example.com
    python pipelines/copper_pipeline.py

Credentials can also live in `.dlt/secrets.toml` under `[sources.copper]`. The command line
(`copper-pipeline run`) wraps the same call with a lock, progress, a summary and clear errors.
"""

from __future__ import annotations

from typing import Any

import dlt

from copper import copper_source, mark_deletions
from pipelines.runner import DEFAULT_DUCKDB, LOADER_FORMAT
from pipelines.tuning import tuned_for_throughput


def load_copper(destination: str = "duckdb", dataset: str = "copper") -> None:
    """Every entity, incrementally; reference tables replaced; custom fields as columns."""
    pipeline = dlt.pipeline(
        pipeline_name="copper", destination=_destination(destination), dataset_name=dataset
    )
    with tuned_for_throughput():  # GC and dlt file settings, measured in benchmarks/cpu_path.py
        # parquet into DuckDB: many times faster to load than dlt's default insert_values
        info = pipeline.run(copper_source(), loader_file_format=LOADER_FORMAT.get(destination))
    mark_deletions(pipeline)  # soft deletes: `_copper_deleted_at` on rows Copper deleted
    print(info)


def load_some_entities() -> None:
    """Only people and opportunities, from 2024 on, with a smaller request budget."""
    pipeline = dlt.pipeline(
        pipeline_name="copper", destination=_destination("duckdb"), dataset_name="copper"
    )
    source = copper_source(
        entities=["people", "opportunities"], start_date="2024-01-01", requests_per_minute=120
    )
    print(pipeline.run(source))
    mark_deletions(pipeline)


def _destination(name: str) -> Any:
    """DuckDB in `copper_warehouse.duckdb`: dlt would name the file after the pipeline, and a
    `copper` catalog beside the `copper` schema makes every `copper.<table>` ambiguous."""
    return dlt.destinations.duckdb(DEFAULT_DUCKDB) if name == "duckdb" else name


if __name__ == "__main__":
    load_copper()

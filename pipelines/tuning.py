"""Process settings that make a dlt run of Copper fast; each measured in benchmarks/cpu_path.py.

    with tuned_for_throughput():
        pipeline.run(copper_source())

Copper's API is the bottleneck of a real run; these keep the pipeline far below it, so a
machine of two cores loads a million records in under a minute (see benchmarks/README.md).
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator

# dlt settings, as environment defaults (a value the user set wins)
DLT_SETTINGS = {
    # intermediate files are read back at once: compressing them only costs CPU
    "DATA_WRITER__DISABLE_COMPRESSION": "true",
    # extracted files rotate at 5 MB so the normalize workers get equal shares of the work,
    # rather than one worker getting `people` and `opportunities` while the other idles
    "SOURCES__DATA_WRITER__FILE_MAX_BYTES": str(5_000_000),
    # one normalize process per core (dlt normalizes row by row, in Python)
    "NORMALIZE__WORKERS": str(min(4, os.cpu_count() or 1)),
}

# Python's cyclic GC, by default, runs a full collection (every live object: at 300k records,
# 53 of them cost 4.8 s) every 70,000 allocations net; a page of 200 records allocates ~20,000
# objects. Rarer young collections cut the GC's time from 5.5 s to 0.8 s there. Memory stays
# flat: the garbage in cycles (httpx responses) still dies in the young generations.
GC_THRESHOLDS = (50_000, 20, 100)


def apply_dlt_settings() -> None:
    """Set `DLT_SETTINGS` in the environment, where the user has not set them."""
    for name, value in DLT_SETTINGS.items():
        os.environ.setdefault(name, value)


@contextlib.contextmanager
def tuned_for_throughput() -> Iterator[None]:
    """Apply the dlt settings, and tune the GC for the duration (normalize workers, forked
    inside, inherit it); the GC is restored afterwards for a long-lived host (Airflow)."""
    apply_dlt_settings()
    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)

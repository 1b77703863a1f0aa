"""Arrow tables built in worker processes, so a big load has more than one core to work with.

An extraction runs in one process, and its Python work (HTTP, JSON, walks, dlt's writes, and
turning records into Arrow tables) shares one GIL: a million records kept one core busy while
the other idled. Turning records into tables (the custom-field pivot and `ArrowPages.split`)
is more than half of that work and needs nothing but the records, so it can go to other
processes: the records travel as JSON (orjson, a few ms for 2,000), the tables come back
pickled (Arrow buffers), and the walks, the budget and dlt stay in the main process.

Workers are forked when a run first needs them (the pivot and the `ArrowPages` of every entity
come along, nothing is imported anew), ignore Ctrl-C (the main process handles it), write
nothing to the terminal (their warnings come back with their tables and are logged once by
the main process), and exit when the main process is gone.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import signal
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import orjson
import pyarrow as pa

from .arrow import ArrowPages
from .client import ClientStats, Page
from .custom_fields import CustomFieldPivot

Tables = list[tuple[str, pa.Table]]
# what building gives back: the tables, the records left for dlt's normalizer (pivoted), and
# the pivot's warnings (column, kind, example) for the main process to log once
Built = tuple[Tables, list[dict], list[tuple[str, str, Any]]]
log = logging.getLogger("copper")
AUTO = -1  # `arrow_processes` default: as many as the machine has cores to spare, for big loads
AUTO_AFTER_RECORDS = 10_000  # ... once an entity has handed over this many records
GRACE_SECONDS = 2.0  # workers idle this long with no entity building are shut down


def auto_processes() -> int:
    """Worker processes for this machine: one core stays with the main process (HTTP, dlt),
    whose share of the work is about that of two workers."""
    return max(0, min(2, (os.cpu_count() or 1) - 1))


def can_fork() -> bool:
    """Whether this process may fork workers: not where fork is missing (Windows), nor in a
    daemonic process (multiprocessing forbids it children; some schedulers' workers are)."""
    return (
        "fork" in multiprocessing.get_all_start_methods()
        and not multiprocessing.current_process().daemon
    )


class ArrowBuilder:
    """Builds one run's Arrow tables: in this process, or in worker processes shared by every
    entity. `processes`: AUTO, 0 (never) or a count (used from the first record)."""

    def __init__(
        self, pivot: CustomFieldPivot, processes: int = AUTO, stats: ClientStats | None = None
    ) -> None:
        self.pivot = pivot
        self.stats = stats if stats is not None else ClientStats()
        self.auto = processes == AUTO
        self.processes = auto_processes() if self.auto else int(processes)
        if self.processes and not can_fork():
            log.info("Arrow tables are built in this process: it cannot fork workers")
            self.processes = 0
        self._entities: dict[str, tuple[ArrowPages, str | None]] = {}
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._users = 0  # entities building now
        self._closing: threading.Timer | None = None
        self.worker_cpu: dict[int, float] = {}  # CPU seconds of each worker (pid), so far

    def register(self, name: str, arrow: ArrowPages, record_type: str | None) -> None:
        """An entity's tables, and the record type its custom fields are pivoted for."""
        self._entities[name] = (arrow, record_type)

    def wanted(self, records_so_far: int) -> bool:
        """Whether an entity that has handed over this many records should use the workers."""
        return self.processes > 0 and (not self.auto or records_so_far >= AUTO_AFTER_RECORDS)

    def here(self, name: str, pages: list[list[dict]], load_id: str) -> Future:
        """Build in this process (a finished future)."""
        records = [record for page in pages for record in page]
        future: Future = Future()
        future.set_result(_build(self._entities[name], self.pivot, records, load_id))
        return future

    def submit(self, name: str, pages: list[list[dict]], load_id: str) -> Future:
        """Build in a worker, from the JSON the pages came in (or, for records that did not
        come as a `Page`, their JSON now); records JSON cannot carry are built here."""
        try:
            payload = [
                (page.raw, page.keep) if isinstance(page, Page) else (orjson.dumps(page), None)
                for page in pages
            ]
        except TypeError:  # not JSON as Copper sends it (never from orjson.loads): no risk
            return self.here(name, pages, load_id)
        pool = self.start()
        try:
            if pool is not None:
                return pool.submit(_build_in_worker, name, payload, load_id)
        except BrokenProcessPool as exc:
            self._stopped(exc)
        return self.here(name, pages, load_id)

    def start(self) -> ProcessPoolExecutor | None:
        """The workers, forked now if they are not running yet (None: they cannot be, and
        the run goes on in this process)."""
        with self._lock:
            if self._pool is None and self.processes:
                pool = _fork_pool(self.processes, self._entities, self.pivot)
                try:
                    pool.submit(os.getpid).result()  # fork now, and see that it works
                except Exception as exc:  # no fork, no memory...: the run goes on here
                    pool.shutdown(wait=False, cancel_futures=True)
                    log.warning("cannot start Arrow worker processes (%s): building in this "
                                "process", exc)  # fmt: skip
                    self.processes = 0
                else:
                    self._pool = pool
            return self._pool

    def _stopped(self, exc: BaseException) -> None:
        """The workers broke (one was killed, say for memory): the rest is built here."""
        with self._lock:
            if self.processes:
                log.warning("Arrow worker processes stopped (%s): building in this process", exc)
            self.processes = 0

    def take(
        self, future: Future, name: str, pages: list[list[dict]], load_id: str
    ) -> tuple[Tables, list[dict]]:
        """A build's result; the pivot's warnings of a worker are logged here, once each. If
        the workers broke (one was killed: out of memory), the rest is built here."""
        try:
            result = future.result()
        except BrokenProcessPool as exc:
            self._stopped(exc)
            result = self.here(name, pages, load_id).result()
        tables, left, warnings = result[:3]
        if len(result) > 3:  # from a worker: (..., records, peak RSS MB, pid, CPU s)
            with self._lock:
                self.stats.worker_peak_rss_mb = max(self.stats.worker_peak_rss_mb, result[4])
                self.worker_cpu[result[5]] = result[6]
                self.stats.built_by_workers += result[3]
                self.stats.worker_cpu_seconds = sum(self.worker_cpu.values())
        for column, kind, example in warnings:
            self.pivot.warn(column, kind, example)
        return tables, left

    def __enter__(self) -> ArrowBuilder:
        with self._lock:
            self._users += 1
            if self._closing is not None:
                self._closing.cancel()
                self._closing = None
        return self

    def __exit__(self, *exc: object) -> None:
        """When no entity is left, the workers are shut down, after a grace period: dlt may
        start another entity's resource just after one ends (or at once, on an error)."""
        with self._lock:
            self._users -= 1
            if self._users or self._pool is None:
                return
            self._closing = threading.Timer(0 if exc[0] else GRACE_SECONDS, self._shut_down)
            self._closing.daemon = True
            self._closing.start()

    def _shut_down(self) -> None:
        with self._lock:
            if self._users or self._pool is None:
                return
            pool, self._pool, self._closing = self._pool, None, None
        pool.shutdown(wait=False, cancel_futures=True)
        log.info("Arrow tables built by %d worker process(es): %.1f CPU s, peak RSS %.0f MB",
                 len(self.worker_cpu), self.stats.worker_cpu_seconds,
                 self.stats.worker_peak_rss_mb)  # fmt: skip


def _build(
    entity: tuple[ArrowPages, str | None], pivot: CustomFieldPivot, records: list[dict],
    load_id: str,
) -> Built:  # fmt: skip
    arrow, record_type = entity
    warnings: list[tuple[str, str, Any]] = []
    if record_type is not None:
        pivot.collect = warnings if _WORKER is not None else None
        for record in records:
            pivot.pivot(record, record_type)
    tables, left = arrow.split(records, load_id)
    return tables, left, warnings


# -- in the workers -------------------------------------------------------------------------
_WORKER: tuple[dict[str, tuple[ArrowPages, str | None]], CustomFieldPivot] | None = None
_KEPT: list[Any] = []  # the parent's stdout/stderr objects: never flushed or freed here


def _fork_pool(
    processes: int, entities: dict[str, tuple[ArrowPages, str | None]], pivot: CustomFieldPivot
) -> ProcessPoolExecutor:
    context = multiprocessing.get_context("fork")
    parent = os.getpid()
    return ProcessPoolExecutor(
        processes, mp_context=context, initializer=_start_worker,
        initargs=(dict(entities), pivot, parent),
    )  # fmt: skip


def _start_worker(
    entities: dict[str, tuple[ArrowPages, str | None]], pivot: CustomFieldPivot, parent: int
) -> None:
    """A forked worker: quiet, deaf to Ctrl-C, gone with its parent."""
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process stops the run
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # buffers copied from the parent must never be written out a second time
    _KEPT.extend([sys.stdout, sys.stderr])
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    logging.disable(logging.CRITICAL)
    _WORKER = (entities, pivot)
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int) -> None:
    """End this worker when its parent is gone (killed: nobody would ever ask it to stop)."""
    while os.getppid() == parent:
        time.sleep(0.1)
    os._exit(0)


def _build_in_worker(
    name: str, pages: list[tuple[bytes, list[int] | None]], load_id: str
) -> tuple[Any, ...]:
    assert _WORKER is not None
    entities, pivot = _WORKER
    records = []
    for raw, keep in pages:
        page = orjson.loads(raw)
        records += page if keep is None else [page[i] for i in keep]
    built = _build(entities[name], pivot, records, load_id)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    return (*built, len(records), usage.ru_maxrss / 1024, os.getpid(), cpu)

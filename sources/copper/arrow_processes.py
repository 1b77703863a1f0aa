"""Records into the rows dlt loads, built in this process or in worker processes.

An extraction runs in one process, and its Python work (HTTP, JSON, walks, dlt's writes, and
turning records into Arrow tables) shares one GIL: a million records kept one core busy while
the other idled. Turning records into tables (the custom-field pivot and `ArrowPages.split`)
is more than half of that work and needs nothing but the records, so it goes to worker
processes once an entity is big: the pages go as the JSON Copper sent, the tables come back
as Arrow files read without a copy, and an entity's own table, into DuckDB, as a Parquet file
that dlt imports as it is (`dlt.mark.with_file_import`), so dlt writes nothing for it. The
walks, the request budget and dlt stay in the main process.

Everything travels by files in a spool folder beside dlt's; the messages between processes
are a few hundred bytes, written whole, so a worker killed at any moment (the OOM killer)
leaves no half message that would hang the pool: its batch is built here instead. Workers are
forked when first needed (the pivot and the `ArrowPages` of every entity come along), ignore
Ctrl-C (the main process handles it), write nothing to the terminal (their warnings come back
with their rows and are logged once here), and exit when the main process is gone.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from .arrow import ArrowPages, combined
from .client import ClientStats, Page
from .custom_fields import CustomFieldPivot

log = logging.getLogger("copper")
AUTO = -1  # `arrow_processes` default: as many as the machine has cores to spare, for big loads
AUTO_AFTER_RECORDS = 2_000  # ... once an entity has handed over this many records
SPLIT_RECORDS = 2_000  # records built at once here (pyarrow costs as much for 200 as for 2,000)
WORKER_RECORDS = 10_000  # ... and by a worker: an imported Parquet file each, 5-10 MB
ARROW_ROWS = 20_000  # rows of an Arrow item for dlt (it computes the schema of every item)
GRACE_SECONDS = 2.0  # workers idle this long with no entity building are shut down
SPOOL_PREFIX = "copper-arrow-"

Tables = list[tuple[str, pa.Table]]
Warning_ = tuple[str, str, Any]  # a custom field's (column, kind, example), logged once
# a build: the tables, the records left for dlt's normalizer (pivoted), the pivot's warnings
Built = tuple[Tables, list[dict], list[Warning_]]


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
    """Builds one run's Arrow tables: here, or in worker processes shared by every entity.

    `processes`: AUTO, 0 (never) or a count (used from the first record). `spool`: the folder
    for the files between processes (beside dlt's, so an imported file is a hard link), and
    `import_files`: whether the destination loads Parquet files dlt did not write (DuckDB).
    """

    def __init__(
        self,
        pivot: CustomFieldPivot,
        processes: int = AUTO,
        stats: ClientStats | None = None,
        spool: Path | None = None,
        import_files: bool = False,
    ) -> None:
        self.pivot = pivot
        self.stats = stats if stats is not None else ClientStats()
        self.auto = processes == AUTO
        self.processes = auto_processes() if self.auto else int(processes)
        if self.processes and not can_fork():
            log.info("Arrow tables are built in this process: it cannot fork workers")
            self.processes = 0
        self.import_files = import_files
        self._spool_parent = spool
        self._spool: Path | None = None
        self._entities: dict[str, tuple[ArrowPages, str | None]] = {}
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._users = 0  # entities building now
        self._closing: threading.Timer | None = None
        self._tasks = 0
        self._imports: dict[str, list[str]] = {}  # files handed to dlt to import, by entity
        self._worker_cpu: dict[int, float] = {}  # CPU seconds of each worker (pid), so far

    def register(self, name: str, arrow: ArrowPages, record_type: str | None) -> None:
        """An entity's tables, and the record type its custom fields are pivoted for."""
        self._entities[name] = (arrow, record_type)

    def rows(self, name: str, prepare: Callable[[dict], dict], load_id: str) -> EntityRows:
        return EntityRows(self, name, prepare, load_id)

    def wanted(self, records_so_far: int) -> bool:
        """Whether an entity that has handed over this many records should use the workers."""
        return self.processes > 0 and (not self.auto or records_so_far >= AUTO_AFTER_RECORDS)

    # -- building ----------------------------------------------------------------------------
    def here(self, name: str, records: list[dict], load_id: str) -> Built:
        return _build(self._entities[name], self.pivot, records, load_id)

    def submit(self, name: str, pages: list[list[dict]], load_id: str) -> _Task | None:
        """A worker's build of these pages, from the JSON they came in (records that did not
        come as a `Page` are written as JSON now); None: build them here."""
        try:
            payload = [
                (page.raw, page.keep) if isinstance(page, Page) else (orjson.dumps(page), None)
                for page in pages
            ]
        except TypeError:  # not JSON as Copper sends it (never from orjson.loads)
            return None
        pool = self.start()
        if pool is None:
            return None
        with self._lock:
            self._tasks += 1
            stem = self._spool / f"{name}.{self._tasks}"  # type: ignore[operator]
        Path(f"{stem}.in").write_bytes(pickle.dumps(payload, protocol=5))
        root = self._entities[name][0].table if self.import_files else None
        try:
            return _Task(pool.submit(_build_in_worker, name, str(stem), load_id, root), stem)
        except BrokenProcessPool as exc:
            self._stopped(exc)
            return None

    def take(self, task: _Task, name: str, load_id: str) -> tuple[Built, list[Any]]:
        """A worker's build (tables, left, warnings) and the Parquet files it wrote for dlt
        to import (dlt items). If the workers broke, the batch is built here."""
        source = Path(f"{task.stem}.in")
        try:
            files, extra, records, rss, pid, cpu = task.future.result()
        except BrokenProcessPool as exc:
            self._stopped(exc)
            pages = pickle.loads(source.read_bytes())
            return self.here(name, _records(pages), load_id), []
        with self._lock:
            self.stats.worker_peak_rss_mb = max(self.stats.worker_peak_rss_mb, rss)
            self._worker_cpu[pid] = cpu
            self.stats.built_by_workers += records
            self.stats.worker_cpu_seconds = sum(self._worker_cpu.values())
        tables, imports = [], []
        for table, path, rows in files:
            if path.endswith(".parquet"):  # the entity's own table, imported as it is
                with self._lock:
                    self._imports.setdefault(name, []).append(path)
                # (with an empty list for data: an item of None would not pass the resource's
                # steps; a list goes by the object extractor, which computes the table once)
                empty = dlt.mark.materialize_table_schema()
                imports.append(dlt.mark.with_file_import(path, "parquet", rows, hints=empty))
            else:  # read in place, without a copy; the mapping outlives the name
                tables.append((table, pa.ipc.open_file(pa.memory_map(path)).read_all()))
                os.unlink(path)
        left: list[dict] = []
        warnings: list[Warning_] = []
        if extra is not None:
            left, warnings = pickle.loads(Path(extra).read_bytes())
            os.unlink(extra)
        source.unlink()
        return (tables, left, warnings), imports

    def imported(self, name: str) -> None:
        """dlt has taken (linked or copied) every file of this entity handed to it."""
        with self._lock:
            paths = self._imports.pop(name, [])
        for path in paths:
            Path(path).unlink(missing_ok=True)

    def warn(self, warnings: list[Warning_]) -> None:
        for column, kind, example in warnings:
            self.pivot.warn(column, kind, example)

    # -- the workers -------------------------------------------------------------------------
    def start(self) -> ProcessPoolExecutor | None:
        """The workers, forked now if they are not running yet (None: they cannot be, and
        the run goes on in this process)."""
        with self._lock:
            if self._pool is None and self.processes:
                pool = _fork_pool(self.processes, self._entities, self.pivot)
                try:
                    pool.submit(os.getpid).result()  # fork now, and see that it works
                    self._spool = self._spool or _new_spool(self._spool_parent)
                except Exception as exc:  # no fork, no memory, no disk...: go on here
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
            if self._users or (self._pool is None and self._spool is None):
                return
            self._closing = threading.Timer(0 if exc[0] else GRACE_SECONDS, self._shut_down)
            self._closing.daemon = True
            self._closing.start()

    def _shut_down(self) -> None:
        with self._lock:
            if self._users:
                return
            pool, spool = self._pool, self._spool
            self._pool = self._spool = self._closing = None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
            log.info("Arrow tables built by %d worker process(es): %.1f CPU s, peak RSS %.0f MB",
                     len(self._worker_cpu), self.stats.worker_cpu_seconds,
                     self.stats.worker_peak_rss_mb)  # fmt: skip
        if spool is not None:  # empty unless a batch was cancelled; else the next run's start
            with contextlib.suppress(OSError):
                spool.rmdir()


class EntityRows:
    """One entity's records on their way to dlt, as dlt items: Arrow tables of about
    `ARROW_ROWS` rows (the entity's first, then its child tables'), Parquet files to import,
    and lists of the records dlt must normalize itself (untidy ones), prepared."""

    def __init__(
        self, builder: ArrowBuilder, name: str, prepare: Callable[[dict], dict], load_id: str
    ) -> None:
        self.builder, self.name, self.prepare, self.load_id = builder, name, prepare, load_id
        self.root = builder._entities[name][0].table
        self._batch: list[list[dict]] = []  # pages waiting to be built
        self._waiting = 0  # ... their records
        self._handed = 0  # records handed over so far
        self._pending: deque[_Task] = deque()  # workers' builds, in order
        self._buffered: dict[str, list[pa.Table]] = {}
        self._rows = 0
        if builder.wanted(0):  # workers from the first record: start them now
            builder.start()

    def add(self, page: list[dict]) -> Iterator[Any]:
        self._batch.append(page)
        self._waiting += len(page)
        workers = self.builder.wanted(self._handed)
        if self._waiting >= (WORKER_RECORDS if workers else SPLIT_RECORDS):
            yield from self._submit(workers)
        yield from self._taken(wait=False)

    def finish(self) -> Iterator[Any]:
        if self._batch:
            yield from self._submit(self.builder.wanted(self._handed))
        yield from self._taken(wait=True)
        yield from self._flushed()

    def _submit(self, workers: bool) -> Iterator[Any]:
        pages, self._batch = self._batch, []
        self._handed += self._waiting
        self._waiting = 0
        task = self.builder.submit(self.name, pages, self.load_id) if workers else None
        if task is not None:
            self._pending.append(task)
        else:  # built here, in order behind the workers' builds
            yield from self._taken(wait=True)
            yield from self._handed_over(self.builder.here(self.name, _records(pages),
                                                           self.load_id))  # fmt: skip

    def _taken(self, wait: bool) -> Iterator[Any]:
        in_flight = 2 * max(1, self.builder.processes)
        while self._pending and (wait or self._pending[0].future.done() or
                                 len(self._pending) > in_flight):  # fmt: skip
            built, imports = self.builder.take(self._pending.popleft(), self.name, self.load_id)
            if imports and self.root in self._buffered:  # the entity's rows before its children
                yield from self._flushed()
            yield from imports
            yield from self._handed_over(built)

    def _handed_over(self, built: Built) -> Iterator[Any]:
        tables, left, warnings = built
        self.builder.warn(warnings)
        for name, table in tables:
            self._buffered.setdefault(name, []).append(table)
            self._rows += table.num_rows
        if self._rows >= ARROW_ROWS:
            yield from self._flushed()
        if left:
            yield [self.prepare(r) for r in left]

    def _flushed(self) -> Iterator[Any]:
        """The buffered tables, the root's first (dlt adds a child table after its parent)."""
        for name, tables in self._buffered.items():  # the root is always the first key
            table = combined(tables)
            yield table if name == self.root else dlt.mark.with_table_name(table, name)
        self._buffered.clear()
        self._rows = 0


def _records(pages: list) -> list[dict]:
    """The records of pages: lists of records, `Page`s (light ones from their JSON), or
    (JSON, positions kept) as workers get them."""
    records: list[dict] = []
    for page in pages:
        if isinstance(page, tuple):
            page = Page([], *page, light=True)
        records += page.records() if isinstance(page, Page) else page
    return records


def _build(
    entity: tuple[ArrowPages, str | None], pivot: CustomFieldPivot, records: list[dict],
    load_id: str,
) -> Built:  # fmt: skip
    arrow, record_type = entity
    warnings: list[Warning_] = []
    if record_type is not None:
        pivot.collect = warnings if _WORKER is not None else None
        for record in records:
            pivot.pivot(record, record_type)
    tables, left = arrow.split(records, load_id)
    return tables, left, warnings


@dataclass(frozen=True)
class _Task:
    """A batch a worker builds: from `stem.in` into files `stem.*`."""

    future: Future
    stem: Path


def _new_spool(parent: Path | None) -> Path:
    """A folder for this run's files between processes; those of runs that died go."""
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
        for old in parent.glob(f"{SPOOL_PREFIX}*"):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=SPOOL_PREFIX, dir=parent))


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
    name: str, stem: str, load_id: str, import_as: str | None
) -> tuple[list[tuple[str, str, int]], str | None, int, float, int, float]:
    """Build `stem.in`'s pages into files `stem.<table>.arrow` (the entity's own table as
    `stem.<table>.parquet` when `import_as` names it) and, for records left to dlt's
    normalizer and warnings, `stem.left`; returns their names and the worker's figures."""
    assert _WORKER is not None
    entities, pivot = _WORKER
    records = _records(pickle.loads(Path(f"{stem}.in").read_bytes()))
    tables, left, warnings = _build(entities[name], pivot, records, load_id)
    files = []
    for table_name, table in tables:
        if table_name == import_as:
            path = f"{stem}.{table_name}.parquet"
            pq.write_table(table, path, compression="none")
        else:
            path = f"{stem}.{table_name}.arrow"
            with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
        files.append((table_name, path, table.num_rows))
    extra = None
    if left or warnings:
        extra = f"{stem}.left"
        Path(extra).write_bytes(pickle.dumps((left, warnings), protocol=5))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    return files, extra, len(records), usage.ru_maxrss / 1024, os.getpid(), cpu

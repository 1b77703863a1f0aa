"""Arrow tables built in worker processes (`arrow_processes`): a worker killed mid-run (the
kernel's OOM killer) costs no record, the rest is built in the run's own process; a process
that may not fork (a daemonic one, as some schedulers' workers are) builds them itself."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time

from copper import ClientStats
from copper.arrow_processes import ArrowBuilder
from copper.custom_fields import CustomFieldPivot
from copper.settings import ENTITIES
from copper_sandbox import SandboxAccount

from .warehouse import Loader, assert_warehouse_equals


def test_a_killed_worker_costs_no_record(serve, tmp_path, caplog):
    account = SandboxAccount.generate(seed=41, scale=0.5)
    stats = ClientStats()
    killed: list[int] = []

    def kill_a_worker() -> None:
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            workers = [p for p in multiprocessing.active_children() if p.pid]
            if workers and stats.built_by_workers:  # working, not starting
                os.kill(workers[0].pid, signal.SIGKILL)
                killed.append(workers[0].pid)
            time.sleep(0.01)

    # a slow Copper: the run is still reading when the worker dies
    with serve(account, latency=0.02) as running:
        loader = Loader(tmp_path, running)
        killer = threading.Thread(target=kill_a_worker, daemon=True)
        killer.start()
        with caplog.at_level(logging.WARNING, logger="copper"):
            loader.run(arrow_processes=1, stats=stats)
        killer.join()
        assert killed, "no worker process was started"
        warnings = [r.getMessage() for r in caplog.records]
        assert any("Arrow worker processes stopped" in m for m in warnings), warnings
        for entity in ENTITIES:
            assert_warehouse_equals(loader, entity.name)


def _processes_in_a_daemon(queue: multiprocessing.Queue) -> None:
    queue.put(ArrowBuilder(CustomFieldPivot([], {}), processes=2).processes)


def test_a_daemonic_process_builds_its_tables_itself():
    queue: multiprocessing.Queue = multiprocessing.get_context("fork").Queue()
    daemon = multiprocessing.get_context("fork").Process(
        target=_processes_in_a_daemon, args=(queue,), daemon=True
    )
    daemon.start()
    assert queue.get(timeout=30) == 0  # multiprocessing forbids a daemon children
    daemon.join(timeout=30)
    assert ArrowBuilder(CustomFieldPivot([], {}), processes=2).processes == 2

"""Stop a `copper-pipeline run` at a chosen point, run again, and compare the warehouse with
the sandbox. The harness of tests/test_crash_safety.py and benchmarks/crash_matrix.py.

A point is found from outside, as an operator would see it: the sandbox's request count for
the extraction (a share of what a whole run needs), dlt's package folders for the rest
(`load/new/<id>`: normalizing; jobs in `load/normalized/<id>`: loading; `load/loaded/<id>`:
loaded, the `_copper_runs` write still to come). SIGKILL and SIGTERM go to the run's process
only (`kill`, an OOM kill: its normalize workers are left behind); SIGINT goes to its whole
process group, as Ctrl-C in a terminal does.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from copper_sandbox import RunningSandbox

from .test_cli import sandbox_env
from .warehouse import Loader, assert_warehouse_equals

CLI = str(Path(sys.executable).with_name("copper-pipeline"))
ENTITIES = ("people", "companies", "leads", "opportunities", "projects", "tasks", "activities")
# where a run is stopped: a share of the extraction's requests, or a dlt step
EXTRACT_SHARES = {"extract early": 0.1, "extract mid": 0.5, "extract late": 0.9}
POINTS = (*EXTRACT_SHARES, "normalize", "load", "after load")
SIGNALS = ("SIGKILL", "SIGTERM", "SIGINT")
INTERRUPT_CODES = {"SIGTERM": 128 + signal.SIGTERM, "SIGINT": 128 + signal.SIGINT}
FINISHING = "finishing the load of an interrupted run"


@dataclass
class Outcome:
    """What one stop and the run after it did."""

    point: str
    signal: str
    hit: str  # where the run was when it stopped ("exited first" if it finished before)
    exit_code: int | None
    interrupt_lines: list[str]  # stderr lines of the stopped run that say it was interrupted
    traceback: bool
    exit_seconds: float  # from the signal to the process's end
    left_behind: int  # processes of the stopped run still alive after it ended (killed then)
    at_stop: int  # processes of the run (itself, its workers) when the signal was sent
    next_exit: int
    next_finished_interrupted: bool
    next_rows: int  # rows the next run extracted
    full_rows: int  # rows a whole first load extracts
    exact: bool
    detail: str = ""
    stderr: str = ""

    @property
    def clean_exit(self) -> bool:
        """SIGTERM/SIGINT: its exit code, one line, no traceback. SIGKILL: nothing to check."""
        if self.signal == "SIGKILL" or self.hit == "exited first":
            return True
        return (
            self.exit_code == INTERRUPT_CODES[self.signal]
            and len(self.interrupt_lines) == 1
            and not self.traceback
        )


class CrashRig:
    """One sandbox account and one warehouse folder; each `stop_and_recover` starts from a
    copy-free fresh folder so every point begins with the same first load."""

    def __init__(self, running: RunningSandbox, root: Path, seed: int = 0) -> None:
        self.running = running
        self.root = root
        self.rng = random.Random(seed)
        self.full_requests = 0
        self.full_rows = 0
        self.settings: dict[str, str] = {}  # more environment for the runs (source settings)

    def env(self, folder: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
        return (
            env
            | sandbox_env(self.running, folder)
            | {
                "RUNTIME__DLTHUB_TELEMETRY": "false",
                "SOURCES__COPPER__REQUESTS_PER_MINUTE": "100000",
            }
            | self.settings
        )

    def command(self, folder: Path) -> list[str]:
        warehouse = folder / "warehouse.duckdb"
        return [CLI, "run", "--duckdb-path", str(warehouse), "--reconcile-every", "0"]

    def requests(self) -> int:
        return self.running.sandbox.stats.as_dict()["requests"]

    def calibrate(self) -> int:
        """Requests of a whole first load: the scale of the extraction points."""
        folder = self.root / "calibration"
        folder.mkdir(parents=True)
        self.running.sandbox.stats.reset()
        done = subprocess.run(
            self.command(folder), env=self.env(folder), capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        self.full_requests, self.full_rows = self.requests(), _rows_extracted(done.stdout)
        return self.full_requests

    def stop_and_recover(self, point: str, sig: str, timeout: float = 600) -> Outcome:
        """A first load stopped at `point` by `sig`; Copper changes; the next run; compare."""
        folder = self.root / f"{point.replace(' ', '-')}-{sig}"
        folder.mkdir(parents=True)
        self.running.sandbox.stats.reset()
        # a slower Copper leaves time to find the extraction points
        slow = point in EXTRACT_SHARES or point == "workers"
        self.running.sandbox.config.update(latency=0.1 if slow else 0.0)
        first = subprocess.Popen(
            self.command(folder), env=self.env(folder), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        with self._people_at_work(first):
            hit = self._wait_for(point, first, folder, timeout)
        if hit == point and point in EXTRACT_SHARES:
            hit = f"extract, {self.requests() / self.full_requests:.0%} of requests"
        at_stop = len(_group_members(first.pid))
        sent = time.monotonic()
        if hit != "exited first":
            if sig == "SIGINT":
                os.killpg(first.pid, signal.SIGINT)
            else:
                first.send_signal(getattr(signal, sig))
        try:
            _, stderr = first.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(first.pid, signal.SIGKILL)
            _, stderr = first.communicate()
        exit_seconds = time.monotonic() - sent
        left_behind = _reap_group(first.pid)
        self.running.sandbox.config.update(latency=0.0)
        self.change_copper()
        self.running.sandbox.stats.reset()
        second = subprocess.run(
            self.command(folder), env=self.env(folder), capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        exact, detail = (False, second.stderr.strip()[-300:])
        if second.returncode == 0:
            exact, detail = self.compare(folder)
        return Outcome(
            point=point,
            signal=sig,
            hit=hit,
            exit_code=first.returncode,
            interrupt_lines=[ln for ln in stderr.splitlines() if "interrupted by" in ln],
            traceback="Traceback" in stderr,
            exit_seconds=exit_seconds,
            left_behind=left_behind,
            at_stop=at_stop,
            next_exit=second.returncode,
            next_finished_interrupted=FINISHING in second.stderr,
            next_rows=_rows_extracted(second.stdout),
            full_rows=self.full_rows,
            exact=exact,
            detail=detail,
            stderr=stderr,
        )

    def change_copper(self) -> None:
        """Between the runs, as a working day would: edits, deletions and new records.
        Activities are not edited in place: Copper has no modified-date filter for them, so
        an edit of one dated before the lookback is invisible to any search (README)."""
        account = self.running.sandbox.account
        for entity in ENTITIES:
            ids = [r["id"] for r in account.snapshot(entity)]
            for record_id in self.rng.sample(ids, min(3, len(ids))):
                account.delete(entity, record_id)
            if entity != "activities":
                account.touch_random(entity, max(1, len(ids) // 100), self.rng)
        person = account.create("people", {"name": f"Crash Test {self.rng.randrange(10**6)}"})
        account.add_activity("person", person["id"], int(time.time()), details="called")

    @contextlib.contextmanager
    def _people_at_work(self, run: subprocess.Popen) -> Iterator[None]:
        """Edits in Copper while `run` runs (every 20 ms, any entity but activities)."""
        account = self.running.sandbox.account
        rng = random.Random(self.rng.random())
        stop = threading.Event()

        def work() -> None:
            while not stop.wait(0.02) and run.poll() is None:
                account.touch_random(rng.choice(ENTITIES[:-1]), 1, rng)

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        try:
            yield
        finally:
            stop.set()
            worker.join()

    def compare(self, folder: Path) -> tuple[bool, str]:
        loader = Loader(
            folder / "dlt-data", self.running, name="copper", duckdb_path=_warehouse(folder)
        )
        try:
            for entity in ENTITIES:
                assert_warehouse_equals(loader, entity)
        except AssertionError as exc:
            return False, str(exc).splitlines()[0][:300]
        return True, ""

    def _wait_for(self, point: str, run: subprocess.Popen, folder: Path, timeout: float) -> str:
        reached = self._detector(point, folder)
        if point == "workers":  # the run's Arrow workers (`arrow_processes`) are running:
            # their spool folder exists (not only a child process, which may be normalize's)
            spool = folder / "dlt-data" / "pipelines" / "copper"
            reached = lambda: (  # noqa: E731
                any(spool.glob("copper-arrow-*")) and len(_group_members(run.pid)) > 1
            )
        deadline = time.monotonic() + timeout
        while run.poll() is None and time.monotonic() < deadline:
            if reached():
                return point
            time.sleep(0.005)
        return "exited first"

    def _detector(self, point: str, folder: Path) -> Callable[[], bool]:
        packages = folder / "dlt-data" / "pipelines" / "copper" / "load"
        if point in EXTRACT_SHARES:
            need = max(1, int(self.full_requests * EXTRACT_SHARES[point]))
            return lambda: self.requests() >= need
        if point == "normalize":
            return lambda: bool(_load_ids(packages / "new"))
        if point == "load":
            return lambda: any(
                any((packages / "normalized" / i / jobs).iterdir())
                for i in _load_ids(packages / "normalized")
                for jobs in ("started_jobs", "completed_jobs")
            )
        return lambda: bool(_load_ids(packages / "loaded"))

    def lock_while_running(self) -> tuple[str, str, bool]:
        """A second run while one is alive refuses (its one line); after the first is killed,
        its stale lock file (the dead pid still in it) does not stop the third run."""
        folder = self.root / "lock"
        folder.mkdir(parents=True)
        self.running.sandbox.config.update(latency=0.5)  # the first run lives for a while
        first = subprocess.Popen(
            self.command(folder), env=self.env(folder), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        self.running.sandbox.stats.reset()
        while self.requests() < 3 and first.poll() is None:
            time.sleep(0.01)
        second = subprocess.run(
            self.command(folder), env=self.env(folder), capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        first.kill()
        first.wait()
        _reap_group(first.pid)
        self.running.sandbox.config.update(latency=0.0)
        stale = (folder / "warehouse.duckdb.lock").read_text().strip()
        third = subprocess.run(
            self.command(folder), env=self.env(folder), capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
        refused = second.stderr.strip().splitlines()[-1] if second.returncode == 1 else ""
        exact = third.returncode == 0 and self.compare(folder)[0]
        return refused, stale, exact


def _rows_extracted(table: str) -> int:
    """The `total` row's "rows extracted" of the run's printed table (0 if none)."""
    for line in table.splitlines():
        if line.startswith("total"):
            return int(line.split()[1].replace(",", ""))
    return 0


def _warehouse(folder: Path) -> Path:
    return folder / "warehouse.duckdb"


def _load_ids(folder: Path) -> list[str]:
    """Package folders (dlt names them by load id: digits and a dot)."""
    try:
        return [p.name for p in folder.iterdir() if p.is_dir() and p.name[:1].isdigit()]
    except FileNotFoundError:
        return []


def _reap_group(pgid: int) -> int:
    """Processes of the stopped run's group still alive (normalize workers of a killed run):
    counted, then killed, as systemd or a container's end would."""
    time.sleep(0.5)  # time to notice their parent is gone, if they do
    alive = 0
    for pid in _group_members(pgid):
        alive += 1
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return alive


def _group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members

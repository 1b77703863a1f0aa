"""A run stopped anywhere loses nothing: the next `copper-pipeline run` completes and the
warehouse equals Copper. Each case kills or interrupts a real first load (a CLI subprocess
against the sandbox over HTTP, into DuckDB), lets Copper change, runs again and compares every
entity. The full matrix, on a larger account, is benchmarks/crash_matrix.py."""

from __future__ import annotations

import pytest

from copper_sandbox import Sandbox, SandboxAccount, SandboxConfig, serve_in_thread

from .crash import INTERRUPT_CODES, CrashRig


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    account = SandboxAccount.generate(seed=23, scale=0.3)
    with serve_in_thread(Sandbox(account, SandboxConfig(requests_per_window=10**9))) as running:
        rig = CrashRig(running, tmp_path_factory.mktemp("crash"), seed=23)
        rig.calibrate()
        yield rig


@pytest.mark.parametrize(
    ("point", "sig"),
    [
        ("extract mid", "SIGKILL"),
        ("normalize", "SIGKILL"),
        ("load", "SIGKILL"),
        ("after load", "SIGKILL"),
        ("extract mid", "SIGINT"),
        ("load", "SIGTERM"),
    ],
)
def test_a_stopped_run_is_completed_by_the_next(rig, point, sig):
    outcome = rig.stop_and_recover(point, sig)
    assert outcome.hit != "exited first", "the run ended before the point was reached"
    assert outcome.next_exit == 0, outcome.detail
    assert outcome.exact, outcome.detail
    if point in ("normalize", "load"):  # extracted, not loaded: the next run loads it first
        assert outcome.next_finished_interrupted
        assert outcome.next_rows < outcome.full_rows / 2  # and does not extract it again
    if point == "after load":  # everything landed: nothing left to finish
        assert not outcome.next_finished_interrupted
    if sig != "SIGKILL":
        assert outcome.exit_code == INTERRUPT_CODES[sig]
        assert len(outcome.interrupt_lines) == 1 and not outcome.traceback, outcome.stderr
        assert outcome.exit_seconds < 30


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGINT"])
def test_worker_processes_stop_with_their_run(rig, sig):
    """Tables built by worker processes (`arrow_processes`): a killed run's workers leave with
    it, Ctrl-C stops the run in one line (the workers ignore it), and the next run is exact."""
    rig.settings = {"SOURCES__COPPER__ARROW_PROCESSES": "2"}
    try:
        outcome = rig.stop_and_recover("workers", sig)
    finally:
        rig.settings = {}
    assert outcome.at_stop >= 2, "no worker process was running when the run stopped"
    assert outcome.left_behind == 0
    assert outcome.next_exit == 0, outcome.detail
    assert outcome.exact, outcome.detail
    assert outcome.clean_exit, outcome.stderr


def test_a_live_run_holds_the_lock_and_a_dead_ones_does_not(rig):
    refused, stale_pid, exact = rig.lock_while_running()
    assert "another copper-pipeline run (pid" in refused
    assert stale_pid, "the killed run's pid stays in the lock file"
    assert exact, "the run after the killed one completed and equals Copper"

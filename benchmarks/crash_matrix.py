"""Stop a first load at every point with every signal; the next run must make it whole.

    .venv/bin/python benchmarks/crash_matrix.py [--scale 2] [--points ...] [--signals ...]

One sandbox account (served in this process, no rate limit) and, per case, a fresh warehouse
folder: `copper-pipeline run` (a subprocess, as cron starts it) is stopped at the point by the
signal while people edit records in Copper; Copper then changes (edits, deletions, new
records); the next `copper-pipeline run` must exit 0 and leave every entity's live rows
exactly equal to Copper's records. Prints a markdown table (benchmarks/README.md keeps one).
The same harness, on fewer cases, is tests/test_crash_safety.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from copper_sandbox import Sandbox, SandboxAccount, SandboxConfig, serve_in_thread
from tests.crash import POINTS, SIGNALS, CrashRig, Outcome

HEADER = (
    "| stopped at | signal | where it was | exit code | line printed | exit s "
    "| processes left | next run | it loaded the stopped run's data first "
    "| rows the next run extracted | warehouse equals Copper |"
)


def row(o: Outcome) -> str:
    line = o.interrupt_lines[0] if o.interrupt_lines else ("" if o.signal == "SIGKILL" else "none")
    line = line.replace("copper-pipeline run: ", "")
    share = f"{o.next_rows:,} of {o.full_rows:,}"
    exact = "yes" if o.exact else f"NO: {o.detail}"
    cells = (
        o.point, o.signal, o.hit, o.exit_code, line or "(killed)", f"{o.exit_seconds:.2f}",
        o.left_behind, f"exit {o.next_exit}", "yes" if o.next_finished_interrupted else "no",
        share, exact,
    )  # fmt: skip
    return "| " + " | ".join(str(c) for c in cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=2.0, help="size of the account")
    parser.add_argument("--points", default=",".join(POINTS))
    parser.add_argument("--signals", default=",".join(SIGNALS))
    args = parser.parse_args()
    account = SandboxAccount.generate(seed=29, scale=args.scale)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve_in_thread(Sandbox(account, SandboxConfig(requests_per_window=10**9))) as running,
    ):
        rig = CrashRig(running, Path(tmp), seed=29)
        requests = rig.calibrate()
        print(f"first load: {rig.full_rows:,} rows in {requests:,} requests", flush=True)
        print(HEADER)
        print("|" + "---|" * HEADER.count(" | ") + "---|")
        failures = 0
        for point in args.points.split(","):
            for sig in args.signals.split(","):
                outcome = rig.stop_and_recover(point, sig)
                failures += not (outcome.exact and outcome.clean_exit)
                print(row(outcome), flush=True)
        refused, stale, exact = rig.lock_while_running()
        print(f"\nA second run while one is alive: {refused or 'NOT refused'}")
        print(f"After that one is killed (pid {stale} left in the lock file), the next run: "
              f"{'completes, warehouse equals Copper' if exact else 'FAILED'}")  # fmt: skip
        print(f"\n{time.monotonic() - started:.0f} s; {failures} case(s) not exact or not clean")


if __name__ == "__main__":
    main()

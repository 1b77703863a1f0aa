"""Faults during a run: every fault of tests/test_faults_midrun.py on a bigger account, through
real `copper-pipeline run` subprocesses, and a long run against a slow, flaky sandbox.

    .venv/bin/python benchmarks/fault_matrix.py                  # the matrix and the load run
    .venv/bin/python benchmarks/fault_matrix.py --scale 1 --load-records 250000
    .venv/bin/python benchmarks/fault_matrix.py --only 503,hang --load-records 0

Matrix: one account (`--scale`, 1 = about 11,500 records), loaded once; for each fault, a copy
of that warehouse and a sandbox where a fifth of the people were edited and 500 people created
since. Run 1 has the fault; if it fails, run 2 runs with the fault gone. Then the warehouse is
compared with the sandbox, every entity (tests/warehouse.py: no lost, duplicated or stale row).

Load: an account of `--load-records` records behind a sandbox that answers every request after
`latency` +- `jitter` seconds, and fails a share of them (5xx, resets, hangs past the client's
timeout); one full run, with the RSS of the run (the process and its normalize workers) sampled
every 0.1 s, reported as its peak up to 50k, 125k and 250k records served, and at the end.

The sandbox is served in this process; the runs are subprocesses. Settings of the runs:
request_timeout 3 s and max_backoff 5 s (defaults 30 and 60: the same retries, sooner);
everything else as a user gets it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "sources"))

import dlt  # noqa: E402
import psycopg2  # noqa: E402

from copper.settings import ENTITIES  # noqa: E402
from copper_sandbox import (  # noqa: E402
    RunningSandbox,
    Sandbox,
    SandboxAccount,
    SandboxConfig,
    serve_in_thread,
)
from tests.postgres import _as_owner, find_bin_dir, postgres_server  # noqa: E402
from tests.test_cli import sandbox_env  # noqa: E402
from tests.test_faults_midrun import LOCKER, Watcher  # noqa: E402
from tests.warehouse import Loader, assert_warehouse_equals  # noqa: E402

CLI = str(Path(sys.executable).parent / "copper-pipeline")
WAREHOUSE = "copper_warehouse.duckdb"
PACKAGES = "dlt-data/pipelines/copper"
NAMES = [e.name for e in ENTITIES]
SEED = 12
RUN_ENV = {"SOURCES__COPPER__REQUEST_TIMEOUT": "3", "SOURCES__COPPER__MAX_BACKOFF": "5"}
RECORDS_AT_SCALE_1 = 11_500


def at(kind: str, *ordinals: int) -> dict[int, str]:
    return dict.fromkeys(ordinals, kind)


def storm(kind: str, start: int, length: int) -> dict[int, str]:
    return {start + i: kind for i in range(length)}


@dataclass
class Scenario:
    name: str
    where: str
    config: dict = field(default_factory=dict)  # the sandbox's, for run 1
    special: str = ""  # duckdb-lock | disk-duckdb | disk-dlt | postgres-restart


SCENARIOS = [
    Scenario("HTTP 500", "API requests 4, 10, 16", {"scripted_faults": at("500", 4, 10, 16)}),
    Scenario("HTTP 502", "API requests 4, 10, 16", {"scripted_faults": at("502", 4, 10, 16)}),
    Scenario("HTTP 503", "API requests 4, 10, 16", {"scripted_faults": at("503", 4, 10, 16)}),
    Scenario("hang (10 s, timeout 3 s)", "API requests 6, 14",
             {"scripted_faults": at("hang", 6, 14), "hang_seconds": 10}),
    Scenario("truncated JSON", "API requests 4, 10, 16",
             {"scripted_faults": at("truncated", 4, 10, 16)}),
    Scenario("malformed JSON (garbled 200)", "API requests 4, 10, 16",
             {"scripted_faults": at("malformed", 4, 10, 16)}),
    Scenario("connection reset mid-body", "API requests 4, 10, 16",
             {"scripted_faults": at("reset", 4, 10, 16)}),
    Scenario("429 storm with Retry-After", "API requests 5-14",
             {"scripted_faults": storm("429", 5, 10), "retry_after": True}),
    Scenario("429 storm without Retry-After", "API requests 5-24",
             {"scripted_faults": storm("429", 5, 20)}),
    Scenario("429 from the rate limit", "sandbox: 20 requests per rolling 5 s",
             {"requests_per_window": 20, "window_seconds": 5.0}),
    Scenario("401 midway (key revoked)", "API request 12 on",
             {"scripted_faults": storm("401", 12, 5000)}),
    Scenario("403 midway (access withdrawn)", "API request 12 on",
             {"scripted_faults": storm("403", 12, 5000)}),
    Scenario("DuckDB locked by another process", "from the end of extraction", {},
             "duckdb-lock"),
    Scenario("disk full: DuckDB file's folder", "tmpfs, 96 KB free at the start", {},
             "disk-duckdb"),
    Scenario("disk full: dlt data folder", "tmpfs, 96 KB free at the start", {}, "disk-dlt"),
    Scenario("Postgres restarted while loading", "pg_ctl restart at the first load job", {},
             "postgres-restart"),
]  # fmt: skip


@dataclass
class Outcome:
    code1: int
    line: str
    retries: int
    throttled: int
    code2: int | None
    exact: str
    seconds: float


def cli(*args: str, cwd: Path, running: RunningSandbox, env: dict | None = None,
        timeout: float = 1800) -> subprocess.CompletedProcess:  # fmt: skip
    full = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    full |= sandbox_env(running, cwd) | {
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        **RUN_ENV,
        **(env or {}),
    }
    return subprocess.run(
        [CLI, *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout
    )


def change_records(account: SandboxAccount) -> None:
    """Users' edits since the baseline: a fifth of the people edited, 500 created, a third of
    the opportunities edited (the incremental run reads a few thousand records)."""
    for person in account.snapshot("people")[::5]:
        account.update("people", person["id"], {"title": f"{person.get('title') or ''} (v2)"})
    for i in range(500):
        account.create("people", {"name": f"New Person {i}", "title": "Imported"})
    for opportunity in account.snapshot("opportunities")[::3]:
        account.update("opportunities", opportunity["id"], {"status": "Won"})


def exact(root: Path, running: RunningSandbox, destination, dataset: str = "copper") -> str:
    loader = Loader(root / "check", running, name="check", destination=destination,
                    dataset=dataset)  # fmt: skip
    try:
        for name in NAMES:
            assert_warehouse_equals(loader, name)
    except AssertionError as exc:
        return f"no: {str(exc).splitlines()[0][:120]}"
    return "yes"


def error_line(result: subprocess.CompletedProcess) -> str:
    if result.returncode == 0:
        return ""
    lines = result.stderr.rstrip().splitlines()
    line = lines[-1] if lines else ""
    extra = [s for s in lines[:-1] if "WARNING" not in s]
    tracebacks = sum("Traceback" in s for s in lines)
    if extra:
        line += f" [+{len(extra)} other stderr lines, {tracebacks} tracebacks]"
    return line


def retries(result: subprocess.CompletedProcess) -> int:
    return len(re.findall(r"; retry \d+/\d+", result.stderr))


@contextlib.contextmanager
def tmpfs(path: Path, size: int) -> Iterator[Callable[[int], None]]:
    """`path` (content kept) as a tmpfs of `size` bytes; yields grow(size)."""
    keep = path.with_name(path.name + "-content")
    shutil.move(path, keep)
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        shutil.copytree(keep, path, dirs_exist_ok=True)
        yield lambda new: subprocess.run(
            ["mount", "-o", f"remount,size={new}", str(path)], check=True
        )
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def used(path: Path) -> int:
    """Bytes `path` takes on a tmpfs: whole 4 KiB pages per file and per folder."""
    return sum(
        -(-p.stat().st_size // 4096) * 4096 if p.is_file() else 4096 for p in path.rglob("*")
    )


# -- the matrix -------------------------------------------------------------------------------
def run_scenario(scenario: Scenario, baseline: Path, scale: float, pg: dict | None) -> Outcome:
    work = Path(tempfile.mkdtemp(prefix="copper-fault-"))
    if scenario.special == "postgres-restart":
        assert pg is not None
        return postgres_scenario(work, scale, pg)
    shutil.copytree(baseline, work, dirs_exist_ok=True)
    account = SandboxAccount.generate(seed=SEED, scale=scale)
    change_records(account)
    config = {"requests_per_window": 10_000, **scenario.config}
    warehouse = work / WAREHOUSE
    with serve_in_thread(Sandbox(account, SandboxConfig(**config))) as running:
        started = time.monotonic()
        with contextlib.ExitStack() as stack:
            grow = None
            if scenario.special == "disk-duckdb":
                (work / "db").mkdir()
                shutil.move(warehouse, work / "db" / WAREHOUSE)
                warehouse = work / "db" / WAREHOUSE
                grow = stack.enter_context(tmpfs(work / "db", used(work / "db") + 96 * 1024))
            if scenario.special == "disk-dlt":
                grow = stack.enter_context(
                    tmpfs(work / "dlt-data", used(work / "dlt-data") + 96 * 1024)
                )
            args = ("run", "--duckdb-path", str(warehouse))
            if scenario.special == "duckdb-lock":
                first = locked_run(work, warehouse, running, args)
            else:
                first = cli(*args, cwd=work, running=running)
            stats = running.stats()
            print(f"{scenario.name}: run 1 made {stats['requests']} requests", file=sys.stderr)
            running.sandbox.config.update(scripted_faults={}, requests_per_window=10_000)
            second = None
            if first.returncode != 0:
                if grow:
                    grow(1024**3)
                second = cli(*args, cwd=work, running=running)
            seconds = time.monotonic() - started
            if grow:  # compare a copy: the tmpfs goes with the stack
                shutil.copy(warehouse, work / "exact.duckdb")
                warehouse = work / "exact.duckdb"
        verdict = exact(work, running, dlt.destinations.duckdb(str(warehouse)))
    shutil.rmtree(work, ignore_errors=True)
    return Outcome(first.returncode, error_line(first), retries(first),
                   stats["by_status"].get("429", 0), second and second.returncode, verdict,
                   seconds)  # fmt: skip


def locked_run(work: Path, warehouse: Path, running: RunningSandbox, args: tuple):
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(warehouse)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert locker.stdin

    def lock() -> None:
        locker.stdin.write("go\n")
        locker.stdin.flush()

    try:
        with Watcher(work / PACKAGES, "normalize/extracted/*", lock):
            return cli(*args, cwd=work, running=running)
    finally:
        locker.communicate("\n", timeout=60)


def postgres_scenario(work: Path, scale: float, pg: dict) -> Outcome:
    url, restart = pg["url"], pg["restart"]
    dataset = f"fault_{int(time.time())}"
    env = {"DESTINATION__POSTGRES__CREDENTIALS": url}
    args = ("run", "--destination", "postgres", "--dataset", dataset)
    account = SandboxAccount.generate(seed=SEED, scale=scale)
    with serve_in_thread(Sandbox(account, SandboxConfig(requests_per_window=10_000))) as running:
        base = cli(*args, cwd=work, running=running, env=env)
        assert base.returncode == 0, base.stderr
    change_records(account)
    with serve_in_thread(Sandbox(account, SandboxConfig(requests_per_window=10_000))) as running:
        started = time.monotonic()
        with Watcher(work / PACKAGES, "load/normalized/*/started_jobs/*", restart):
            first = cli(*args, cwd=work, running=running, env=env)
        second = cli(*args, cwd=work, running=running, env=env) if first.returncode else None
        seconds = time.monotonic() - started
        verdict = exact(work, running, dlt.destinations.postgres(url), dataset)
    shutil.rmtree(work, ignore_errors=True)
    return Outcome(first.returncode, error_line(first), retries(first), 0,
                   second and second.returncode, verdict, seconds)  # fmt: skip


@contextlib.contextmanager
def restartable_postgres() -> Iterator[dict]:
    with postgres_server() as url:
        with contextlib.closing(psycopg2.connect(url)) as con, con.cursor() as cur:
            cur.execute("show data_directory")
            data = cur.fetchone()[0]
        pg_ctl = str(find_bin_dir() / "pg_ctl")  # type: ignore[operator]
        log = str(Path(data).parent / "server.log")

        def restart() -> None:
            cmd = [pg_ctl, "-D", data, "-l", log, "-m", "immediate", "-w", "restart"]
            subprocess.run(_as_owner(cmd), check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, cwd="/tmp")  # fmt: skip

        yield {"url": url, "restart": restart}


def matrix(scale: float, only: set[str] | None) -> list[tuple[Scenario, Outcome]]:
    baseline = Path(tempfile.mkdtemp(prefix="copper-fault-baseline-"))
    account = SandboxAccount.generate(seed=SEED, scale=scale)
    with serve_in_thread(Sandbox(account, SandboxConfig(requests_per_window=10_000))) as running:
        started = time.monotonic()
        base = cli("run", "--duckdb-path", str(baseline / WAREHOUSE), cwd=baseline,
                   running=running)  # fmt: skip
        assert base.returncode == 0, base.stderr
        print(f"baseline: {sum(account.count(n) for n in NAMES):,} records loaded in "
              f"{time.monotonic() - started:.1f} s", file=sys.stderr)  # fmt: skip
    chosen = [s for s in SCENARIOS if not only or any(o.lower() in s.name.lower() for o in only)]
    results = []
    with contextlib.ExitStack() as stack:
        pg = None
        if any(s.special == "postgres-restart" for s in chosen):
            pg = stack.enter_context(restartable_postgres())
        for scenario in chosen:
            outcome = run_scenario(scenario, baseline, scale, pg)
            print(f"{scenario.name}: {outcome}", file=sys.stderr)
            results.append((scenario, outcome))
    shutil.rmtree(baseline, ignore_errors=True)
    return results


def matrix_table(results: list[tuple[Scenario, Outcome]]) -> str:
    head = ("fault", "where injected", "run 1 exit", "line printed (run 1)",
            "retries / 429s", "run 2 exit", "warehouse equals sandbox", "seconds")  # fmt: skip
    rows = [
        (s.name, s.where, str(o.code1), f"`{o.line}`" if o.line else "(none: completed)",
         f"{o.retries} / {o.throttled}", "-" if o.code2 is None else str(o.code2), o.exact,
         f"{o.seconds:.1f}")
        for s, o in results
    ]  # fmt: skip
    return markdown(head, rows)


def markdown(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


# -- the load run -----------------------------------------------------------------------------
LOAD_FAULTS = {"500": 0.01, "502": 0.005, "503": 0.01, "reset": 0.005, "hang": 0.003}


def tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and its descendants (the normalize workers)."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            with open(f"/proc/{current}/status") as f:
                total += next(int(x.split()[1]) for x in f if x.startswith("VmRSS:")) * 1024
            with open(f"/proc/{current}/task/{current}/children") as f:
                pids += [int(c) for c in f.read().split()]
        except (FileNotFoundError, StopIteration, ProcessLookupError):
            continue
    return total


def load_run(records: int, latency: float, jitter: float) -> dict:
    scale = records / RECORDS_AT_SCALE_1
    started = time.monotonic()
    account = SandboxAccount.generate(seed=SEED, scale=scale)
    total = sum(account.count(n) for n in NAMES)
    print(f"load: {total:,} records generated in {time.monotonic() - started:.0f} s",
          file=sys.stderr)  # fmt: skip
    config = SandboxConfig(requests_per_window=0, latency=latency, jitter=jitter,
                           faults=dict(LOAD_FAULTS), hang_seconds=10, seed=SEED)  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="copper-fault-load-"))
    marks = [m for m in (50_000, 125_000, 250_000) if m <= total]
    peaks: dict[int, int] = {}  # mark -> peak RSS while fewer records than it were served
    with serve_in_thread(Sandbox(account, config)) as running:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
        env |= sandbox_env(running, work) | {
            "SOURCES__COPPER__REQUESTS_PER_MINUTE": "1000000",  # the faults, not Copper's 180
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            **RUN_ENV,
        }
        started = time.monotonic()
        proc = subprocess.Popen(
            [CLI, "run", "--duckdb-path", str(work / WAREHOUSE)],
            cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        peak = 0
        out: list[str] = []
        reader = threading.Thread(target=lambda: out.append(proc.communicate()[1]), daemon=True)
        reader.start()
        sandbox_stats = running.sandbox.stats
        while proc.poll() is None:
            peak = max(peak, tree_rss(proc.pid))
            served = sandbox_stats.records_served
            for mark in marks:
                if served < mark:
                    peaks[mark] = peak
            time.sleep(0.1)
        reader.join()
        seconds = time.monotonic() - started
        stats = running.stats()
        stderr = out[0] if out else ""
        code = proc.returncode
        verdict = exact(work, running, dlt.destinations.duckdb(str(work / WAREHOUSE)))
    shutil.rmtree(work, ignore_errors=True)
    faults = {k: v for k, v in stats["by_status"].items() if k != "200"}
    return {
        "records": total, "requests": stats["requests"], "faulted": faults,
        "retries": len(re.findall(r"; retry \d+/\d+", stderr)),
        "timeouts": stderr.count("timed out"), "code": code,
        "line": error_line(subprocess.CompletedProcess([], code, "", stderr)),
        "seconds": seconds, "peaks": peaks, "peak": peak, "exact": verdict,
    }  # fmt: skip


def load_table(result: dict, latency: float, jitter: float) -> str:
    faults = ", ".join(f"{k}: {v}" for k, v in sorted(result["faulted"].items()))
    head = ("records", "latency", "faults injected (share of requests)", "requests",
            "not-200 answers", "retries (of them timeouts)", "exit", "seconds",
            *(f"peak RSS MB, extract to {m // 1000}k" for m in result["peaks"]),
            "peak RSS MB, whole run", "warehouse equals sandbox")  # fmt: skip
    shares = ", ".join(f"{k} {v:.1%}" for k, v in LOAD_FAULTS.items())
    peaks = [*result["peaks"].values(), result["peak"]]
    row = (f"{result['records']:,}", f"{latency:.2f} s +- {jitter:.2f}", shares,
           f"{result['requests']:,}", faults or "none",
           f"{result['retries']} ({result['timeouts']})", str(result["code"]),
           f"{result['seconds']:.0f}", *(f"{p / 2**20:.0f}" for p in peaks),
           result["exact"])  # fmt: skip
    return markdown(head, [row])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="matrix account size")
    parser.add_argument("--only", help="comma-separated parts of scenario names")
    parser.add_argument("--load-records", type=int, default=250_000, help="0: no load run")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--jitter", type=float, default=0.04)
    parser.add_argument("--no-matrix", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    # the sandbox's server, in this process, logs each connection it cuts on purpose
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
    if os.geteuid() != 0:
        print("not root: the disk-full scenarios need to mount a tmpfs", file=sys.stderr)
    with open("/proc/loadavg") as f:
        print(f"load average before: {' '.join(f.read().split()[:3])}", file=sys.stderr)
    if not args.no_matrix:
        only = {o.strip() for o in args.only.split(",")} if args.only else None
        results = matrix(args.scale, only)
        print(f"\nMatrix (account scale {args.scale}):\n")
        print(matrix_table(results))
    if args.load_records:
        result = load_run(args.load_records, args.latency, args.jitter)
        print("\nLoad:\n")
        print(load_table(result, args.latency, args.jitter))
    with open("/proc/loadavg") as f:
        print(f"\nload average after: {' '.join(f.read().split()[:3])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

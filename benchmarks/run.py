"""This project against its peers, side by side, on the same simulated Copper account.

    .venv/bin/python benchmarks/run.py [--k 3] [--people 120000] [--scale 1] [--systems ...]

One sandbox (a subprocess, seeded) serves the account with Copper's limits compressed in time
by k: 180 requests per rolling 60/k s, latency 1/k s +- 0.3/k s. Each system runs against it
in turn, in its own process and under a time limit, with the sandbox's request counters reset
before and one rate-limit window of rest between systems. A failing or slow peer becomes a row
with its error; it never aborts the table.

Rows: this project (`copper.copper_source` into DuckDB via dlt); dlt's `rest_api_source` set up
the way a dlt user would in an afternoon (benchmarks/peers/dlt_rest_api.py); Parsons'
`parsons.Copper`; the Singer `tap-copper`; `airbyte-source-copper`. Peers are benchmark-only:
each lives in its own venv under benchmarks/.venvs/ (created on first use with `pip install`),
never in the project's dependencies, and runs as a subprocess script from benchmarks/peers/
that prints {entity: [ids]}; requests and 429s are counted by the sandbox.

Columns: records loaded (rows in the entity tables the system wrote, duplicates included),
requests and 429s (sandbox stats, reference endpoints included), wall seconds (from the
system's first request to its data landing, measured inside its process), records/s,
efficiency = records/s / the physical ceiling (200 records x 180 requests per 60/k s), and
whether the result equals the sandbox snapshot: every current record's id exactly once, per
entity the system covers ("partial: N of 7 entities" when it covers fewer).

Defaults, and why. The account is `--count people=120000` plus `--scale 1` for the rest
(9,500 records in six entities): people exceeds Copper's 100,000-match cap of one search, so
a connector that pages one search to its end silently stops at 100,000.

k=3 (180 requests per 20 s, latency 0.33 s) by default, measured on this machine: the whole
run took 20 min, and the peers were latency-bound as they are in reality (process CPU 24-108 s
in 200-450 s of wall). At k=10 (180 per 6 s, latency 0.1 s) it takes 11 min, but 0.1 s is
less than what a page costs each client in its own work (parsing, dlt's normalize and load),
so no system came near the budget (3.6-4.5 requests/s of 30 allowed) and the table measured
client CPU on a shared 2-core box, not API use: this project 854 records/s and the rest_api
config 758 at k=10, against 787 and 425 at k=3. k=30 compresses further still. At k=3 this
project's extract is budget-bound (78 s for 681 requests, 76 s at best), but its normalize and
load (~86 s, not compressed) weigh more than they would at k=1. k=1 is
reality: about an hour (Parsons alone sleeps 1 s and waits ~1 s per page, 637 pages).
Parsons' 1-second sleep after every page is compressed by k like the rest of Copper's time
(pass --parsons-real-sleep to keep it whole).

Rests: peers' own retry back-offs (dlt's and tap-copper's exponential waits) are in real
seconds, not compressed by k; they only matter to a peer that draws 429s (none did).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
VENVS = HERE / ".venvs"
ENTITIES = ("people", "companies", "leads", "opportunities", "projects", "tasks", "activities")
INSTALL_TIMEOUT = 600.0


@dataclass
class Result:
    system: str
    records: int | None = None
    requests: int | None = None
    throttled: int | None = None
    seconds: float | None = None
    cpu: float | None = None  # user + system CPU seconds of the system's process
    verdict: str = ""
    details: list[str] = field(default_factory=list)
    error: str = ""  # "not run: ..." or the failure; the row then shows it


# -- peers' venvs and whether they can be pointed at the sandbox ---------------------------------
def site_packages(venv: Path) -> Path | None:
    found = glob.glob(str(venv / "lib" / "python3*" / "site-packages"))
    return Path(found[0]) if found else None


def ensure_venv(name: str, package: str) -> tuple[Path | None, str]:
    """benchmarks/.venvs/NAME with `package` installed: (its python, a note or an error)."""
    venv = VENVS / name
    python = venv / "bin" / "python"
    if python.exists():
        shown = subprocess.run(
            [str(python), "-m", "pip", "show", package], capture_output=True, text=True
        )
        if shown.returncode == 0:
            version = next(
                (ln.split(":", 1)[1].strip() for ln in shown.stdout.splitlines()
                 if ln.startswith("Version:")), "?"
            )  # fmt: skip
            return python, f"{package} {version} already in {venv}"
    log(f"installing {package} into {venv} ...")
    started = time.monotonic()
    try:
        subprocess.run(
            ["python3", "-m", "venv", str(venv)],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", package],
            capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None, f"not run: pip install {package} took over {INSTALL_TIMEOUT:.0f} s"
    except subprocess.CalledProcessError as exc:
        return None, f"not run: python3 -m venv failed ({exc.returncode})"
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1][:160]
        return None, f"not run: pip install {package} failed: {tail}"
    return python, f"installed {package} in {time.monotonic() - started:.0f} s"


def parsons_base_url(sp: Path) -> tuple[bool, str]:
    source = sp / "parsons" / "copper" / "copper.py"
    text = source.read_text() if source.exists() else ""
    if "self.uri = COPPER_URI" in text and "url = self.uri + endpoint" in text:
        return True, "parsons/copper/copper.py: instance attribute `uri` (self.uri = COPPER_URI)"
    return False, f"no `uri` attribute found in {source.name}"


def tap_copper_base_url(sp: Path) -> tuple[bool, str]:
    client = (sp / "tap_copper" / "client.py").read_text()
    streams = "".join(p.read_text() for p in (sp / "tap_copper" / "streams").glob("*.py"))
    if 'self.base_url = "https://api.copper.com' in client and "self.client.base_url" in streams:
        return True, (
            "tap_copper/client.py: Client.__init__ hard-codes self.base_url, and the config "
            "key base_url is read only by discovery's probe; streams build URLs from the "
            "instance attribute client.base_url, overwritten by the driver"
        )
    return False, "tap_copper/client.py: no overridable base_url attribute"


def airbyte_base_url(sp: Path) -> tuple[bool, str]:
    manifest = sp / "source_copper" / "manifest.yaml"
    for number, line in enumerate(manifest.read_text().splitlines(), 1):
        if "url_base:" in line:
            if "config" in line:
                return True, f"manifest.yaml:{number}: {line.strip()}"
            return False, (
                f"source_copper/manifest.yaml:{number} is the literal `{line.strip()}`; "
                "no base URL in its spec"
            )
    return False, "source_copper/manifest.yaml: no url_base"


def export_source(rev: str, workdir: Path) -> tuple[str | None, str]:
    """sources/copper at git `rev`, extracted under workdir: (a PYTHONPATH for it, a note)."""
    repo = HERE.parent
    target = workdir / f"source-{rev.replace('/', '_')}"
    target.mkdir(parents=True, exist_ok=True)
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", rev],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", rev, "sources/copper"],
            capture_output=True, check=True,
        ).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    except subprocess.CalledProcessError as exc:
        return None, f"not run: could not export sources/copper at {rev}: {exc}"
    return str(target / "sources"), f"sources/copper as of {rev} ({commit}), not the work tree"


def provenance() -> str:
    """Which code ran: the git commit, and files under sources/ that differ from it."""
    repo = str(HERE.parent)
    try:
        head = subprocess.run(
            ["git", "-C", repo, "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", repo, "status", "--porcelain", "--", "sources"],
            capture_output=True, text=True, check=True,
        ).stdout.split("\n")  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "code: not a git checkout"
    changed = [line[3:] for line in dirty if line.strip()]
    return f"code: git {head}" + (
        f" + uncommitted changes in {', '.join(changed)}" if changed else ", sources/ clean"
    )


# -- the run -----------------------------------------------------------------------------------
def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_peer(
    python: str,
    script: Path,
    running,
    args,
    workdir: Path,
    extra: list[str],
    pythonpath: str | None = None,
) -> tuple[dict | None, str, float, float]:
    """Run one system's script: (its JSON result or None, an error, wall s, CPU s)."""
    cmd = [
        python, str(script), "--base-url", running.base_url, "--api-key", running.api_key,
        "--user-email", running.user_email, "--k", str(args.k), "--workdir", str(workdir),
        *extra,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    slug = script.stem
    out_path, err_path = workdir / f"{slug}.stdout", workdir / f"{slug}.stderr"
    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with out_path.open("w") as out, err_path.open("w") as err:
        try:
            code = subprocess.run(
                cmd, stdout=out, stderr=err, env=env, timeout=args.time_limit, cwd=workdir
            ).returncode
        except subprocess.TimeoutExpired:
            return None, f"timeout: stopped after {args.time_limit:.0f} s", args.time_limit, 0.0
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = [ln for ln in out_path.read_text().splitlines() if ln.startswith("{")]
    if code == 0 and lines:
        return json.loads(lines[-1]), "", wall, cpu
    err_lines = [ln.strip() for ln in err_path.read_text().splitlines() if ln.strip()]
    tail = err_lines[-1] if err_lines else f"exit status {code}, no output"
    return None, f"failed: {tail[:220]} (see {err_path})", wall, cpu


def compare(
    entities: dict[str, list[int]], truth: dict[str, set[int]], future: set[int]
) -> tuple[str, list[str]]:
    """(verdict, one detail line per covered entity that differs)."""
    details = []
    covered = [e for e in ENTITIES if e in entities]
    for entity in covered:
        ids, want = entities[entity], truth[entity]
        got = set(ids)
        missing, extra, dupes = want - got, got - want, len(ids) - len(got)
        if not (missing or extra or dupes):
            continue
        parts = [f"{entity}: {len(got):,} of {len(want):,} ids"]
        if missing:
            why = ""
            if entity == "activities" and missing & future:
                why = f", {len(missing & future):,} of them dated in the future"
            parts.append(f"{len(missing):,} missing{why}")
        if extra:
            parts.append(f"{len(extra):,} not in the account")
        if dupes:
            parts.append(f"{dupes:,} duplicate rows")
        details.append("; ".join(parts))
    coverage = f"partial: {len(covered)} of {len(ENTITIES)} entities"
    if details:
        wrong = ", ".join(d.split(":")[0] for d in details)
        verdict = f"no ({wrong})"
        if len(covered) < len(ENTITIES):
            verdict += f"; {coverage}"
    elif len(covered) < len(ENTITIES):
        verdict = f"{coverage}, equal on those"
    else:
        verdict = "yes"
    return verdict, details


def fmt_row(r: Result, ceiling: float) -> list[str]:
    if r.error and r.records is None:
        return [r.system, "", fmt_int(r.requests), fmt_int(r.throttled), "", "", "", r.error]
    rate = r.records / r.seconds if r.records is not None and r.seconds else None
    return [
        r.system,
        fmt_int(r.records),
        fmt_int(r.requests),
        fmt_int(r.throttled),
        f"{r.seconds:.1f}" if r.seconds is not None else "",
        f"{rate:,.0f}" if rate is not None else "",
        f"{rate / ceiling:.0%}" if rate is not None else "",
        r.verdict,
    ]


def fmt_int(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


HEADER = ["system", "records loaded", "requests", "429s", "wall s", "records/s",
          "efficiency", "equals snapshot"]  # fmt: skip


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(HEADER, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--k", type=float, default=3.0, help="time compression (1 = reality)")
    parser.add_argument("--scale", type=float, default=1.0, help="account size but people")
    parser.add_argument("--people", type=int, default=120_000, help="people records")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--time-limit", type=float, default=None, help="seconds per system (1200; 3600 at k=1)"
    )
    parser.add_argument(
        "--systems",
        default="this,rest_api,parsons,tap-copper,airbyte",
        help="comma-separated subset of this,rest_api,parsons,tap-copper,airbyte",
    )
    parser.add_argument("--parsons-real-sleep", action="store_true")
    parser.add_argument(
        "--source-rev",
        default=None,
        help="run this project's sources/copper as of this git revision (e.g. HEAD) instead of "
        "the working tree",
    )
    parser.add_argument("--workdir", default=None, help="DuckDB files and logs (default: temp)")
    args = parser.parse_args()
    if args.time_limit is None:
        args.time_limit = 1200.0 * max(1.0, 3.0 / args.k)
    selected = [s.strip() for s in args.systems.split(",") if s.strip()]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="copper-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)

    from copper_sandbox import serve_in_subprocess

    k = args.k
    window = 60 / k
    ceiling = 200 * 180 / window
    begun = time.monotonic()
    sandbox_args = [
        "--seed", str(args.seed), "--scale", str(args.scale), "--count", f"people={args.people}",
        "--rate-limit", "180", "--window", f"{window:g}", "--latency", f"{1 / k:g}",
        "--jitter", f"{0.3 / k:g}",
    ]  # fmt: skip
    log(f"sandbox: {' '.join(sandbox_args)}; workdir {workdir}")
    code = provenance()
    log(code)
    results: list[Result] = []
    notes: list[str] = []
    with serve_in_subprocess(*sandbox_args) as running:
        truth: dict[str, set[int]] = {}
        future: set[int] = set()
        for entity in ENTITIES:
            records = running.admin("GET", f"/snapshot/{entity}")
            truth[entity] = {int(r["id"]) for r in records}
            if entity == "activities":
                now = time.time()
                future = {int(r["id"]) for r in records if (r.get("activity_date") or 0) > now}
            del records
        total = sum(len(v) for v in truth.values())
        account = ", ".join(f"{e} {len(truth[e]):,}" for e in ENTITIES)
        log(f"account: {total:,} records ({account}); ceiling {ceiling:,.0f} records/s")
        first = True
        for key in selected:
            if not first:
                time.sleep(window + 0.5)  # the sandbox's window is shared: let it drain
            first = False
            result = run_system(key, running, args, workdir, truth, future, notes)
            results.append(result)
            log(f"{result.system}: {' | '.join(fmt_row(result, ceiling)[1:])}")
            for detail in result.details:
                log(f"  {detail}")

    rows = [fmt_row(r, ceiling) for r in results]
    elapsed = time.monotonic() - begun
    print()
    print(
        f"Account: {total:,} records ({account}); seed {args.seed}. Limits compressed by "
        f"k={k:g}: 180 requests per {window:g} s, latency {1 / k:g} s +- {0.3 / k:g} s. "
        f"Ceiling {ceiling:,.0f} records/s. Cores: {os.cpu_count()}. {code}."
    )
    print()
    print(text_table(rows))
    print()
    for r in results:
        for detail in r.details:
            print(f"{r.system}: {detail}")
    for note in notes:
        print(f"note: {note}")
    print(f"\nbenchmark wall time {elapsed / 60:.1f} min; DuckDB files and logs in {workdir}")
    print()
    print(markdown_table(rows))


def run_system(key: str, running, args, workdir: Path, truth, future, notes: list[str]) -> Result:
    """One row: install (peers), check the base URL can be pointed, run, count, compare."""
    names = {
        "this": "this project",
        "rest_api": "dlt rest_api (afternoon config)",
        "parsons": "Parsons",
        "tap-copper": "tap-copper",
        "airbyte": "airbyte-source-copper",
    }
    if key not in names:
        return Result(key, error=f"not run: unknown system {key!r}")
    result = Result(names[key])
    extra: list[str] = []
    pythonpath = None
    if key == "this" and args.source_rev:
        pythonpath, note = export_source(args.source_rev, workdir)
        notes.append(f"{result.system}: {note}")
        if pythonpath is None:
            result.error = note
            return result
    if key in ("this", "rest_api"):
        python = sys.executable
        script = PEERS / ("this_project.py" if key == "this" else "dlt_rest_api.py")
    else:
        package, script, check = {
            "parsons": ("parsons", PEERS / "parsons_peer.py", parsons_base_url),
            "tap-copper": ("tap-copper", PEERS / "tap_copper_peer.py", tap_copper_base_url),
            "airbyte": ("airbyte-source-copper", None, airbyte_base_url),
        }[key]
        venv_python, install_note = ensure_venv(package, package)
        notes.append(f"{result.system}: {install_note}")
        if venv_python is None:
            result.error = install_note
            return result
        sp = site_packages(venv_python.parent.parent)
        try:
            pointable, evidence = check(sp)
        except OSError as exc:
            pointable, evidence = False, f"source not found: {exc}"
        notes.append(f"{result.system}: base URL: {evidence}")
        if not pointable:
            result.error = f"not run: base URL not configurable ({evidence})"
            return result
        if script is None:
            result.error = f"not run: base URL configurable ({evidence}) but no driver written"
            return result
        python = str(venv_python)
        if key == "parsons" and args.parsons_real_sleep:
            extra.append("--real-sleep")
    log(f"running {result.system} (limit {args.time_limit:.0f} s) ...")
    running.admin("POST", "/stats/reset")
    output, error, wall, cpu = run_peer(python, script, running, args, workdir, extra, pythonpath)
    result.cpu = cpu
    stats = running.stats()
    result.requests = stats["requests"]
    result.throttled = stats["by_status"].get("429", 0)
    if output is None:
        result.error = error
        result.seconds = wall
        return result
    entities = {e: ids for e, ids in output["entities"].items() if e in ENTITIES}
    result.records = sum(len(ids) for ids in entities.values())
    result.seconds = output["seconds"]
    result.verdict, result.details = compare(entities, truth, future)
    result.details += [str(n) for n in output.get("notes", [])]
    statuses = ", ".join(f"{s}: {n:,}" for s, n in sorted(stats["by_status"].items()))
    allowed = 180 * args.k / 60
    result.details.append(
        f"HTTP statuses {statuses}; {result.requests / result.seconds:.1f} requests/s of "
        f"{allowed:g} allowed; process CPU {cpu:.0f} s (user+sys) in {wall:.0f} s of wall"
    )
    return result


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()

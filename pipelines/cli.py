"""`copper-pipeline`: load Copper into DuckDB or Postgres from cron, check a setup, run the demo.

copper-pipeline run [--destination duckdb|postgres] [--entities people,opportunities]
                    [--start-date 2024-01-01] [--full-refresh] [--dbt]
                    [--deletes soft|hard] [--reconcile-every HOURS]
copper-pipeline reconcile [--full] [--entities ...]
copper-pipeline check
copper-pipeline demo
copper-pipeline webhooks serve [--host 127.0.0.1] [--port 8088] [--certfile F --keyfile F]
copper-pipeline webhooks subscribe --target https://... [--events update,delete]
copper-pipeline webhooks list | remove [--target URL | --id N ...]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from copper.extract import DELETES
from copper.settings import ENTITIES

from .runner import DEFAULT_DUCKDB, DESTINATIONS, Interrupted, RunError, RunOptions, run

EXIT_FAILED, EXIT_USAGE = 1, 2


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, as every other error (the usage is in -h)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="copper-pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True)

    run_p = sub.add_parser("run", help="load Copper into the warehouse (incremental)")
    _warehouse_args(run_p)
    run_p.add_argument(
        "--entities", help=f"comma-separated, from: {', '.join(e.name for e in ENTITIES)}"
    )
    run_p.add_argument("--start-date", help="ISO date: on a first load, skip older records")
    run_p.add_argument(
        "--full-refresh",
        action="store_true",
        help="drop state and tables of the selected entities, reload them",
    )
    run_p.add_argument("--dbt", action="store_true", help="run the dbt project after loading")
    run_p.add_argument(
        "--deletes",
        choices=DELETES,
        help="records Copper deleted: soft (default) sets _copper_deleted_at, hard deletes rows",
    )
    run_p.add_argument(
        "--reconcile-every",
        type=float,
        metavar="HOURS",
        help="look for deletions when the last look is this old (default 12; 0: every run)",
    )

    rec_p = sub.add_parser(
        "reconcile", help="load changes and look for deletions now (--full: compare every id)"
    )
    _warehouse_args(rec_p)
    rec_p.add_argument("--entities", help="as for run")
    rec_p.add_argument(
        "--full", action="store_true", help="re-list every record and compare ids, not counts"
    )
    rec_p.add_argument("--deletes", choices=DELETES, help="as for run")

    check_p = sub.add_parser("check", help="validate credentials and configuration")
    _warehouse_args(check_p)
    check_p.add_argument("--entities", help="as for run")
    check_p.add_argument("--start-date", help="as for run")

    demo_p = sub.add_parser("demo", help="load a simulated Copper account into demo.duckdb")
    demo_p.add_argument("--duckdb-path", type=Path, default=Path("demo.duckdb"))
    demo_p.add_argument("--scale", type=float, default=1.0, help="size of the simulated account")
    for p in (run_p, rec_p, check_p, demo_p):
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)

    from .webhooks import add_parser as add_webhooks_parser

    add_webhooks_parser(sub, _warehouse_args)
    return parser


def _warehouse_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--destination", default="duckdb", choices=DESTINATIONS)
    parser.add_argument("--duckdb-path", type=Path, default=Path(DEFAULT_DUCKDB))
    parser.add_argument("--dataset", default="copper")


def options_from(args: argparse.Namespace) -> RunOptions:
    folder = args.duckdb_path.parent
    if args.destination == "duckdb" and not folder.is_dir():
        raise RunError(f"bad --duckdb-path {args.duckdb_path}: no folder {folder}; create it first")
    entities = [e.strip() for e in args.entities.split(",") if e.strip()] if args.entities else None
    reconciling = args.command == "reconcile"
    return RunOptions(
        destination=args.destination,
        duckdb_path=args.duckdb_path,
        dataset=args.dataset,
        entities=entities,
        start_date=args.start_date,
        full_refresh=getattr(args, "full_refresh", False),
        dbt=getattr(args, "dbt", False),
        deletes=getattr(args, "deletes", None),
        reconcile=("full" if args.full else "counts") if reconciling else None,
        reconcile_every_hours=0 if reconciling else getattr(args, "reconcile_every", None),
    )


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("copper").setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:  # dlt's own chatter (columns without data yet, each failed try of a load
        # job with its traceback) is not for cron logs: a failed run ends in one line of ours
        os.environ.setdefault("RUNTIME__LOG_LEVEL", "CRITICAL")
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")  # no calls home from cron
    logging.getLogger("httpx").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    verbose = getattr(args, "verbose", False)
    setup_logging(verbose)
    try:
        with _terminate_as_interrupt():
            return _command(args, verbose)
    except KeyboardInterrupt as exc:
        _exit_interrupted(args, exc)


def _command(args: argparse.Namespace, verbose: bool) -> int:
    try:
        if args.command in ("run", "reconcile"):
            report = run(options_from(args))
            print(report.table())
            return 0
        if args.command == "check":
            from .check import check

            print(check(options_from(args)))
            return 0
        if args.command == "webhooks":
            from .webhooks import command

            return command(args)
        from .demo import demo

        return demo(args.duckdb_path, scale=args.scale)
    except RunError as exc:
        if verbose:
            traceback.print_exception(exc)
        name = " ".join(filter(None, (args.command, getattr(args, "webhooks_command", None))))
        print(f"copper-pipeline {name}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE if _is_usage(exc) else EXIT_FAILED


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (systemd, Airflow, `kill`) stops a run as Ctrl-C does: cleanly, in one line.
    dlt's own handlers are off: they hold a signal until a step's jobs drain, or lose it when
    the step ends first."""
    os.environ["RUNTIME__INTERCEPT_SIGNALS"] = "false"

    def stop(signum: int, _frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name)

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread (an embedding host): leave its handlers alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_interrupted(args: argparse.Namespace, exc: KeyboardInterrupt) -> NoReturn:
    """One line, then exit at once: worker threads mid-request and normalize processes are
    abandoned, as a crash would abandon them. Nothing is lost: cursors advance only with the
    data they belong to, and the next run first loads whatever this one had extracted."""
    name = getattr(exc, "signal_name", "SIGINT")
    print(
        f"copper-pipeline {args.command}: interrupted by {name}; what was loaded stays, "
        "and the next run carries on from there",
        file=sys.stderr,
        flush=True,
    )
    for child in multiprocessing.active_children():
        child.kill()
    sys.stdout.flush()
    os._exit(128 + signal.Signals[name].value)


def _is_usage(exc: RunError) -> bool:
    text = str(exc)
    return text.startswith(("unknown ", "bad ", "missing configuration", "Copper credentials"))


if __name__ == "__main__":
    sys.exit(main())

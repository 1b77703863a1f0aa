"""Progress of a run: a live table on an interactive terminal, plain lines for logs and cron.

The live display (rich) redraws a table a few times a second: records and requests per
entity, 429s, rate-limit waits, elapsed time. Anywhere else (a pipe, a log file, cron, CI) a
line is logged every `every` seconds instead, so logs stay greppable.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from copper import ClientStats


def interactive(stream: Any = None) -> bool:
    """A person is watching: a terminal, not CI, not `TERM=dumb`."""
    stream = stream or sys.stderr
    return (
        bool(getattr(stream, "isatty", lambda: False)())
        and not os.environ.get("CI")
        and os.environ.get("TERM") != "dumb"
    )


def progress_line(stats: ClientStats, selected: list[str]) -> str:
    parts = [
        f"{name} {stats.entity(name).extracted:,}"
        for name in selected
        if stats.entity(name).requests
    ]
    _, waited = stats.budget_waits
    return (
        f"progress: {', '.join(parts) or 'starting'} records; {stats.requests:,} requests, "
        f"{stats.throttled} x 429, {waited:.0f}s waited for the rate limit"
    )


def progress_table(stats: ClientStats, selected: list[str], started: float) -> Any:
    from rich.table import Table

    waits, waited = stats.budget_waits
    table = Table(
        title=f"copper-pipeline run: {time.monotonic() - started:.0f}s elapsed",
        caption=f"rate limit: {waits:,} requests waited, {waited:.0f}s in all",
    )
    for column in ("entity", "records", "requests", "429s", "seconds"):
        table.add_column(column, justify="left" if column == "entity" else "right")
    for name in selected:
        e = stats.entity(name)
        state = "" if e.requests else " (waiting)"
        table.add_row(f"{name}{state}", f"{e.extracted:,}", f"{e.requests:,}",
                      f"{e.throttled:,}", f"{e.seconds:.1f}")  # fmt: skip
    table.add_row("total", f"{sum(stats.entity(n).extracted for n in selected):,}",
                  f"{stats.requests:,}", f"{stats.throttled:,}", "", style="bold")  # fmt: skip
    return table


@contextlib.contextmanager
def progress(
    stats: ClientStats,
    selected: list[str],
    log: Callable[[str], None],
    every: float,
    live: bool | None = None,
) -> Iterator[None]:
    """Show the run's progress while the block runs (live on a terminal unless `live=False`)."""
    if live if live is not None else interactive():
        from rich.console import Console
        from rich.live import Live

        started = time.monotonic()
        console = Console(stderr=True)
        with Live(
            progress_table(stats, selected, started), console=console, refresh_per_second=4,
            transient=True,
            get_renderable=lambda: progress_table(stats, selected, started),
        ):  # fmt: skip
            yield
        return
    done = threading.Event()

    def report() -> None:
        while not done.wait(every):
            log(progress_line(stats, selected))

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()

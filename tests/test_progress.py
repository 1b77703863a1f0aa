"""`copper-pipeline run` shows a live table on a terminal and plain lines in logs."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

from copper import ClientStats
from copper_sandbox import SandboxAccount
from pipelines.progress import progress

from .test_cli import CLI, cli, sandbox_env


def run_on_a_terminal(tmp_path, running) -> tuple[int, str]:
    """Run with stderr on a pseudo-terminal, as a person at a shell would; what it drew."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__") and k != "CI"}
    env |= sandbox_env(running, tmp_path) | {
        "SOURCES__COPPER__REQUESTS_PER_MINUTE": "900",  # slow enough to be redrawn
        "TERM": "xterm-256color",
        "COLUMNS": "120",
    }
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [CLI, "run"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=terminal
    )
    os.close(terminal)
    drawn = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the run closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=300)
    os.close(controller)
    return proc.returncode, drawn.decode(errors="replace")


def test_a_terminal_gets_a_live_table_and_a_log_gets_lines(serve, tmp_path):
    account = SandboxAccount.generate(seed=81, scale=0.05)
    with serve(account) as running:
        (tmp_path / "tty").mkdir()
        code, drawn = run_on_a_terminal(tmp_path / "tty", running)
        logged = cli("run", cwd=tmp_path, running=running)
    assert code == 0, drawn
    assert "elapsed" in drawn and "requests" in drawn  # the live table, redrawn
    assert "people" in drawn and "rate limit:" in drawn
    assert "progress:" not in drawn  # no log lines on the terminal
    assert logged.returncode == 0, logged.stderr
    assert "elapsed" not in logged.stderr  # a pipe gets no live table


def test_logs_get_a_plain_line_every_interval():
    stats = ClientStats()
    stats.entity("people").requests, stats.entity("people").extracted = 3, 600
    lines: list[str] = []
    with progress(stats, ["people", "tasks"], lines.append, every=0.05, live=False):
        time.sleep(0.3)
    assert len(lines) >= 2
    assert lines[0].startswith("progress: people 600 records; 3 requests, 0 x 429")

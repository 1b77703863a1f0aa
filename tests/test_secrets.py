"""No secret leaves the process: not on stdout or stderr (with -v too), not in any file a run
writes (the warehouse, dlt's pipeline state, traces and load packages), also when it fails.

The sandbox is created with a distinctive API key; the webhook secret is set in the
environment of every run. Files are searched as bytes, gzip members unpacked, and the DuckDB
warehouse row by row (its strings are stored compressed), dlt's state decompressed.
"""

from __future__ import annotations

import gzip
import threading
from pathlib import Path

import duckdb
from dlt.common.versioned_state import decompress_state
from starlette.requests import Request

from copper_sandbox import Sandbox, SandboxAccount, SandboxConfig, serve_in_thread

from .test_cli import cli, one_line_error

API_KEY = "k3y-Distinctive-9f2c77ab41e0d5"
WEBHOOK_SECRET = "whs-Distinctive-5e81c0d9aa37f2b6"
SECRETS = (API_KEY, WEBHOOK_SECRET)
ENV = {"SOURCES__COPPER__WEBHOOK_SECRET": WEBHOOK_SECRET}


class RevokedMidway(Sandbox):
    """A sandbox whose key stops working after `good` API requests (a rotated key)."""

    def __init__(self, *args, good: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.good = good
        self._seen = 0
        self._lock = threading.Lock()

    def _authenticated(self, request: Request) -> bool:
        with self._lock:
            self._seen += 1
            if self._seen > self.good:
                return False
        return super()._authenticated(request)


def sandbox(seed: int, cls: type[Sandbox] = Sandbox, **kwargs) -> Sandbox:
    account = SandboxAccount.generate(seed=seed, scale=0.05)
    return cls(account, SandboxConfig(requests_per_window=10_000), api_key=API_KEY, **kwargs)


def texts(path: Path) -> list[bytes]:
    """What a file holds, readable: its bytes, unpacked if gzip, a DuckDB file row by row."""
    data = path.read_bytes()
    found = [data]
    if data[:2] == b"\x1f\x8b":
        found.append(gzip.decompress(data))
    if path.suffix == ".duckdb":
        with duckdb.connect(str(path), read_only=True) as con:
            tables = con.execute(
                "select table_schema, table_name from information_schema.tables"
            ).fetchall()
            for schema, table in tables:
                rows = con.execute(f'select * from "{schema}"."{table}"').fetchall()
                found.append(repr(rows).encode())
                if table == "_dlt_pipeline_state":
                    columns = [c[0] for c in con.description or ()]
                    for row in rows:
                        state = row[columns.index("state")] if "state" in columns else None
                        if state:
                            found.append(repr(decompress_state(state)).encode())
    return found


def assert_no_secret(result, *roots: Path) -> int:
    """No secret in the run's output or any file under `roots`; returns the files searched."""
    for secret in SECRETS:
        assert secret not in result.stdout, f"stdout has {secret}"
        assert secret not in result.stderr, f"stderr has {secret}"
    files = [p for root in roots for p in root.rglob("*") if p.is_file()]
    for path in files:
        for text in texts(path):
            for secret in SECRETS:
                assert secret.encode() not in text, f"{path} holds {secret}"
    return len(files)


def test_runs_keep_the_secrets_out_of_output_and_files(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = ENV | {"HOME": str(home)}  # anything written under ~ is searched too
    with serve_in_thread(sandbox(61)) as running:
        assert running.api_key == API_KEY
        first = cli("run", cwd=tmp_path, running=running, env=env)
        assert first.returncode == 0, first.stderr
        verbose = cli("-v", "run", "--reconcile-every", "0", cwd=tmp_path, running=running,
                      env=env)  # fmt: skip
        assert verbose.returncode == 0, verbose.stderr
    assert "DEBUG" in verbose.stderr or "INFO" in verbose.stderr  # -v did log
    assert (tmp_path / "copper_warehouse.duckdb").exists()
    assert (tmp_path / "dlt-data" / "pipelines" / "copper" / "state.json").exists()
    for result in (first, verbose):
        searched = assert_no_secret(result, tmp_path)
    assert searched > 10  # the warehouse, dlt's state, trace, schemas and load packages


def test_a_run_failing_midway_keeps_the_secrets_out_of_output_and_files(tmp_path):
    for verbose in (False, True):
        cwd = tmp_path / f"verbose-{verbose}"
        cwd.mkdir()
        home = cwd / "home"
        home.mkdir()
        with serve_in_thread(sandbox(62, RevokedMidway, good=12)) as running:
            result = cli(*(["-v"] if verbose else []), "run", cwd=cwd, running=running,
                         env=ENV | {"HOME": str(home)})  # fmt: skip
        assert result.returncode == 1, result.stderr
        if verbose:  # a traceback and the one-line error
            assert "Traceback" in result.stderr and "HTTP 401" in result.stderr
        else:
            line = one_line_error(result)
            assert "401" in line and "api_key" in line  # the setting's name, not its value
        assert_no_secret(result, cwd)


def test_webhook_commands_keep_the_secrets_out_of_output(tmp_path):
    with serve_in_thread(sandbox(63)) as running:
        target = "https://hooks.example.com/copper/webhooks"
        subscribe = cli("-v", "webhooks", "subscribe", "--target", target, cwd=tmp_path,
                        running=running, env=ENV)  # fmt: skip
        assert subscribe.returncode == 0, subscribe.stderr
        listed = cli("-v", "webhooks", "list", cwd=tmp_path, running=running, env=ENV)
        assert listed.returncode == 0, listed.stderr
        stored = running.sandbox.account.webhooks  # Copper got the secret: it must send it
        assert stored and all(WEBHOOK_SECRET in repr(w) for w in stored)
    assert target in listed.stdout
    for result in (subscribe, listed):
        assert_no_secret(result, tmp_path)

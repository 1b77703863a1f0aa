"""`copper-pipeline run` with bad input: exit 2 for a usage error, 1 for a failure, one line on
stderr naming the problem, no traceback, and nothing written: no DuckDB file where there was
none, an existing warehouse byte for byte as it was.

Each case runs twice: in an empty directory, and beside a warehouse an earlier run loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from copper_sandbox import Sandbox, SandboxAccount, SandboxConfig, serve_in_thread
from copper_sandbox.server import free_port

from .test_cli import cli, one_line_error

WAREHOUSE = "copper_warehouse.duckdb"
USAGE, FAILED = 2, 1
NOWHERE = f"http://127.0.0.1:{free_port()}/developer_api/v1"  # nothing listens there
CREDENTIALS = {
    "SOURCES__COPPER__API_KEY": "k",
    "SOURCES__COPPER__USER_EMAIL": "a@b.c",
    "SOURCES__COPPER__BASE_URL": NOWHERE,  # a setting refused before any request, or this
}


def setting(name: str, value: str) -> dict[str, str]:
    return {f"SOURCES__COPPER__{name.upper()}": value}


# (id, args, env, exit code, text of the error line, nothing at all written)
CASES = [
    ("requests_per_minute 0", (), setting("requests_per_minute", "0"), USAGE,
     "bad sources.copper.requests_per_minute 0", False),
    ("requests_per_minute text", (), setting("requests_per_minute", "text"), USAGE,
     "bad setting requests_per_minute 'text'", False),
    ("negative activity_lookback_days", (), setting("activity_lookback_days", "-3"), USAGE,
     "bad sources.copper.activity_lookback_days -3", False),
    ("window_workers 0", (), setting("window_workers", "0"), USAGE,
     "bad sources.copper.window_workers 0", False),
    ("base_url not a URL", (), setting("base_url", "not a url"), USAGE,
     "bad sources.copper.base_url 'not a url'", False),
    ("base_url nothing listens", (), {}, FAILED, "cannot connect", False),
    ("reconcile wrong", (), setting("reconcile", "wrong"), USAGE,
     "bad sources.copper.reconcile 'wrong'", False),
    ("--deletes wrong", ("--deletes", "wrong"), {}, USAGE,
     "argument --deletes: invalid choice: 'wrong'", True),
    ("dataset not an identifier", ("--dataset", "bad name!"), {}, USAGE,
     "bad --dataset 'bad name!'", True),
    ("dataset empty", ("--dataset", ""), {}, USAGE, "bad --dataset ''", True),
]  # fmt: skip


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> Path:
    """A directory with a warehouse (and dlt's state) that one run loaded."""
    path = tmp_path_factory.mktemp("loaded")
    account = SandboxAccount.generate(seed=71, scale=0.02)
    with serve_in_thread(Sandbox(account, SandboxConfig(requests_per_window=10_000))) as running:
        result = cli("run", cwd=path, running=running)
    assert result.returncode == 0, result.stderr
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def assert_clear_error(result, code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    line = one_line_error(result)  # one error line, no traceback
    assert text in line, line
    assert line.startswith("copper-pipeline run: error: ")
    problem = [s for s in result.stderr.splitlines() if "WARNING" not in s]
    assert problem == [line], result.stderr  # besides warnings of retries, only that line


@pytest.mark.parametrize(
    ("args", "env", "code", "text", "clean"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
@pytest.mark.parametrize("where", ["empty", "beside a warehouse"])
def test_bad_input(tmp_path, loaded, where, args, env, code, text, clean):
    if where == "beside a warehouse":
        shutil.copytree(loaded, tmp_path, dirs_exist_ok=True)
        before = digest(tmp_path / WAREHOUSE)
    existing = files(tmp_path)
    result = cli("run", *args, cwd=tmp_path, env=CREDENTIALS | env, timeout=120)
    assert_clear_error(result, code, text)
    if where == "empty":
        assert not list(tmp_path.rglob("*.duckdb")), files(tmp_path)
    else:
        assert digest(tmp_path / WAREHOUSE) == before  # the warehouse, byte for byte
    made = files(tmp_path) - existing
    if clean:  # refused before anything was touched: not even dlt's state or the lock
        assert not made
    else:  # refused by the source: only dlt's working folder for the pipeline, no lock file
        assert all(f.startswith("dlt-data") for f in made), made


def test_a_duckdb_path_in_a_missing_folder(tmp_path):
    result = cli("run", "--duckdb-path", "no/such/folder/w.duckdb", cwd=tmp_path, env=CREDENTIALS)
    assert_clear_error(result, USAGE, "bad --duckdb-path no/such/folder/w.duckdb: no folder")
    assert files(tmp_path) == set()  # no folder made, nothing written


def test_a_corrupt_duckdb_file(tmp_path):
    corrupt = tmp_path / WAREHOUSE
    corrupt.write_bytes(os.urandom(64 * 1024))
    before = digest(corrupt)
    result = cli("run", cwd=tmp_path, env=CREDENTIALS)
    assert_clear_error(result, FAILED, "not a valid DuckDB database file")
    assert digest(corrupt) == before


@contextlib.contextmanager
def read_only_folder(path: Path) -> Iterator[Path]:
    """`path` made read-only, with what it holds. Root writes through a chmod, so as root
    it becomes a read-only (tmpfs) mount; skipped where root cannot mount."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    keep = path.with_name(path.name + "-content")
    shutil.copytree(path, keep)
    mount = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(path)], capture_output=True)
    if mount.returncode != 0:
        pytest.skip(f"runs as root, where chmod does not stop writes, and cannot mount a "
                    f"read-only folder: {mount.stderr.decode().strip()}")  # fmt: skip
    try:
        shutil.copytree(keep, path, dirs_exist_ok=True)
        subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.mark.parametrize("where", ["empty", "beside a warehouse"])
def test_a_duckdb_path_in_a_read_only_folder(tmp_path, loaded, where):
    folder = tmp_path / "ro"
    folder.mkdir()
    if where == "beside a warehouse":
        shutil.copytree(loaded / "dlt-data", tmp_path / "dlt-data")
        shutil.copy(loaded / WAREHOUSE, folder / WAREHOUSE)
    existing = files(folder)
    before = digest(folder / WAREHOUSE) if existing else None
    with read_only_folder(folder):
        result = cli("run", "--duckdb-path", f"ro/{WAREHOUSE}", cwd=tmp_path, env=CREDENTIALS)
        assert files(folder) == existing
        if before:
            assert digest(folder / WAREHOUSE) == before
    assert_clear_error(result, FAILED, f"cannot write ro/{WAREHOUSE}.lock")

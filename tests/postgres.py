"""A real PostgreSQL server for tests: `COPPER_TEST_POSTGRES_URL`, or one started on the spot.

Fixtures: `postgres_url` (session) and `pg_dataset` (a fresh schema name per test).
`postgres_server()` is the same server as a context manager, for benchmarks.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

ENV_URL = "COPPER_TEST_POSTGRES_URL"
DATABASE = "copper_test"
SUPERUSER = "postgres"
HOW_TO_GET_ONE = (
    f"install PostgreSQL (`apt-get install -y postgresql`: the tests start their own server "
    f"from /usr/lib/postgresql/*/bin), or set {ENV_URL}=postgresql://USER:PASSWORD@HOST:PORT/DB "
    "to use a running one"
)


class PostgresUnavailable(RuntimeError):
    """No server URL was given and no PostgreSQL binaries are installed."""


def find_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb and pg_ctl, if any."""
    found = [
        d
        for d in Path("/usr/lib/postgresql").glob("*/bin")
        if (d / "initdb").exists() and (d / "pg_ctl").exists()
    ]
    found.sort(key=lambda d: tuple(int(p) for p in d.parent.name.split(".") if p.isdigit()))
    return found[-1] if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner(cmd: list[str]) -> list[str]:
    """`cmd` as the server's owner: the `postgres` OS user when we are root (it refuses root)."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", SUPERUSER, "--", *cmd]
    return ["su", SUPERUSER, "-s", "/bin/sh", "-c", shlex.join(cmd)]


def _run(cmd: list[str], cwd: Path) -> None:
    done = subprocess.run(_as_owner(cmd), cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({done.returncode}):\n{done.stderr}")


@contextlib.contextmanager
def postgres_server(database: str = DATABASE) -> Iterator[str]:
    """Start a throwaway server on a free loopback port; yield its URL; stop and delete it."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise PostgresUnavailable(f"no PostgreSQL server binaries found: {HOW_TO_GET_ONE}")
    root = Path(tempfile.mkdtemp(prefix="copper-pg-", dir="/tmp"))
    data = root / "data"
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(SUPERUSER)
        except KeyError:
            shutil.rmtree(root)
            raise PostgresUnavailable(
                f"running as root and there is no `{SUPERUSER}` OS user: {HOW_TO_GET_ONE}"
            ) from None
        os.chown(root, owner.pw_uid, owner.pw_gid)
    pg_ctl = str(bin_dir / "pg_ctl")
    started = False
    try:
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER]
        _run([*initdb, "--auth=trust", "-E", "UTF8", "--no-sync"], root)
        port = _start(pg_ctl, data, root)
        started = True
        # trust auth takes any password, but dlt refuses credentials without one
        url = f"postgresql://{SUPERUSER}:{SUPERUSER}@127.0.0.1:{port}"
        with contextlib.closing(psycopg2.connect(f"{url}/postgres")) as con:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(f'create database "{database}"')
        yield f"{url}/{database}"
    finally:
        if started:
            _run([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], root)
        shutil.rmtree(root, ignore_errors=True)


def _start(pg_ctl: str, data: Path, root: Path, attempts: int = 3) -> int:
    """Start the server on a free port (another port if one is taken meanwhile); its port."""
    log = root / "server.log"
    for attempt in range(attempts):
        port = _free_port()
        options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -k {root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        try:
            _run([pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "start"], root)
            return port
        except RuntimeError as exc:
            if attempt == attempts - 1:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"{exc}\nserver log:\n{tail}") from None
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL: `COPPER_TEST_POSTGRES_URL` as is, else a server of this session's own
    (one per xdist worker). Fails, never skips, when neither is available."""
    if os.environ.get(ENV_URL):
        yield os.environ[ENV_URL]
        return
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(postgres_server())
        except PostgresUnavailable as exc:
            pytest.fail(str(exc), pytrace=False)
        yield url


@pytest.fixture
def pg_dataset(postgres_url: str) -> Iterator[str]:
    """A schema name no other test uses; the schema and its staging twin are dropped after."""
    name = f"copper_{uuid.uuid4().hex[:12]}"
    yield name
    with contextlib.closing(psycopg2.connect(postgres_url)) as con:
        con.autocommit = True
        with con.cursor() as cur:
            for schema in (name, f"{name}_staging"):
                cur.execute(f'drop schema if exists "{schema}" cascade')

"""Copper webhooks: the receiver over real HTTP, the inbox on real SQLite and Postgres, the CLI."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
import trustme
import uvicorn

from copper import CopperClient
from copper.client import Credentials
from copper_sandbox import SandboxAccount
from copper_sandbox.server import free_port
from pipelines.runner import RunError
from pipelines.webhook_inbox import (
    INBOX_TABLE,
    TYPES,
    Inbox,
    SQLiteInbox,
    WebhookEvent,
    payload_hash,
)
from pipelines.webhook_subscriptions import list_subscriptions, remove, subscribe
from pipelines.webhooks import DEFAULT_SECRET_FIELD, make_app

from .test_cli import cli, one_line_error

CLI = str(Path(sys.executable).parent / "copper-pipeline")
SECRET = "s3cret-webhook-value-0123456789"
FIELD = DEFAULT_SECRET_FIELD


def notification(**overrides) -> dict:
    """A notification as Copper sends it, with our secret field and another subscription's."""
    body = {
        "ids": [101, 102],
        "type": "person",
        "event": "update",
        "subscription_id": 7,
        FIELD: SECRET,
        "key": "another-secret-field",
        "updated_attributes": {"name": ["Old", "New"]},
        "timestamp": "2021-12-13T19:18:22.084Z",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


@contextlib.contextmanager
def serve_app(app) -> Iterator[str]:
    """Serve an ASGI app on a free loopback port from a thread (as the sandbox's tests do)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "receiver did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "copper_warehouse.duckdb.webhooks.sqlite"


@pytest.fixture
def receiver(sqlite_path: Path) -> Iterator[str]:
    """The receiver on a SQLite inbox: its URL."""
    with serve_app(make_app(lambda: SQLiteInbox(sqlite_path), FIELD, SECRET)) as url:
        yield url


def post(url: str, body=None, *, content: bytes | None = None, **kwargs) -> httpx.Response:
    if content is None:
        content = orjson.dumps(body)
    return httpx.post(url, content=content, timeout=10, **kwargs)


def pending(path: Path) -> list[WebhookEvent]:
    with SQLiteInbox(path) as inbox:
        return inbox.pending()


# -- the receiver ------------------------------------------------------------------------------
def test_a_good_notification_is_stored_without_its_secret_fields(receiver, sqlite_path):
    before = datetime.now(UTC)
    response = post(receiver, notification())
    assert response.status_code == 200, response.text
    assert response.json() == {"stored": True}
    [event] = pending(sqlite_path)
    assert event == WebhookEvent(
        seq=event.seq,
        received_at=event.received_at,
        subscription_id=7,
        type="person",
        event="update",
        ids=(101, 102),
        timestamp="2021-12-13T19:18:22.084Z",
        updated_attributes={"name": ["Old", "New"]},
    )
    assert event.seq >= 1
    assert event.received_at.tzinfo is not None and event.received_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= event.received_at <= datetime.now(UTC)
    # secret fields never reach the disk (neither ours nor another subscription's)
    stored = b"".join(p.read_bytes() for p in sqlite_path.parent.glob(f"{sqlite_path.name}*"))
    assert SECRET.encode() not in stored and b"another-secret-field" not in stored
    # the receiver never touches the DuckDB file: a run may hold it for minutes
    assert not (sqlite_path.parent / "copper_warehouse.duckdb").exists()


def test_the_second_path_and_a_delete_without_optional_fields(receiver, sqlite_path):
    body = notification(event="delete", type="activity_log", updated_attributes=..., timestamp=...)
    body.pop("subscription_id")
    response = post(f"{receiver}/copper/webhooks", body)
    assert response.status_code == 200, response.text
    [event] = pending(sqlite_path)
    assert (event.type, event.event, event.ids) == ("activity_log", "delete", (101, 102))
    assert event.subscription_id is None and event.timestamp is None
    assert event.updated_attributes is None


@pytest.mark.parametrize(
    "secret", [SECRET + "x", SECRET[:-1], "", SECRET.upper(), 12345, None], ids=repr
)
def test_a_wrong_secret_is_401_and_nothing_is_stored(receiver, sqlite_path, secret):
    response = post(receiver, notification(**{FIELD: secret}))
    assert response.status_code == 401
    assert SECRET not in response.text
    assert pending(sqlite_path) == []


def test_a_missing_secret_is_401_and_nothing_is_stored(receiver, sqlite_path):
    response = post(receiver, notification(**{FIELD: ...}))
    assert response.status_code == 401
    assert response.json() == {"error": "secret missing or wrong"}
    assert pending(sqlite_path) == []


def test_a_replayed_notification_is_stored_once(receiver, sqlite_path):
    first = post(receiver, notification())
    # the same notification again, its fields in another order: still the same notification
    replay = post(receiver, dict(reversed(list(notification().items()))))
    other = post(receiver, notification(ids=[103]))
    assert [r.json() for r in (first, replay, other)] == [
        {"stored": True},
        {"stored": False},
        {"stored": True},
    ]
    assert [e.ids for e in pending(sqlite_path)] == [(101, 102), (103,)]


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b'{"ids": [1], "type": "person",', "not JSON"),
        (b"", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "object"),
        (orjson.dumps(notification(ids=...)), "ids"),
        (orjson.dumps(notification(ids=[])), "ids"),
        (orjson.dumps(notification(ids=["101"])), "ids"),
        (orjson.dumps(notification(ids=[1.5])), "ids"),
        (orjson.dumps(notification(ids=[True])), "ids"),
        (orjson.dumps(notification(ids=7)), "ids"),
        (orjson.dumps(notification(type="unicorn")), "type"),
        (orjson.dumps(notification(type=...)), "type"),
        (orjson.dumps(notification(event="archive")), "event"),
        (orjson.dumps(notification(subscription_id="7")), "subscription_id"),
        (orjson.dumps(notification(timestamp=5)), "timestamp"),
        (orjson.dumps(notification(updated_attributes=[1])), "updated_attributes"),
    ],
)
def test_malformed_notifications_are_400_with_a_short_error(receiver, sqlite_path, content, error):
    response = post(receiver, content=content)
    assert response.status_code == 400
    message = response.json()["error"]
    assert error in message and len(message) < 120
    assert pending(sqlite_path) == []


def test_an_oversized_body_is_413_and_nothing_is_stored(sqlite_path):
    app = make_app(lambda: SQLiteInbox(sqlite_path), FIELD, SECRET, max_body=1024)
    big = notification(updated_attributes={"notes": ["", "x" * 2000]})
    with serve_app(app) as url:
        declared = post(url, big)  # Content-Length says so: refused before reading
        assert declared.status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
            data = orjson.dumps(big)
            for i in range(0, len(data), 256):
                yield data[i : i + 256]

        chunked = httpx.post(url, content=chunks(), timeout=10)
        assert chunked.status_code == 413
        small = post(url, notification())
        assert small.status_code == 200
    assert [e.ids for e in pending(sqlite_path)] == [(101, 102)]


def test_a_storage_failure_is_503_and_logged_without_the_secret(tmp_path, caplog):
    (tmp_path / "a-file").write_text("not a directory")
    unwritable = tmp_path / "a-file" / "inbox.sqlite"
    with serve_app(make_app(lambda: SQLiteInbox(unwritable), FIELD, SECRET)) as url:
        response = post(url, notification())
    assert response.status_code == 503
    assert "could not store" in response.json()["error"]
    messages = [r.getMessage() for r in caplog.records if r.name == "copper.webhooks"]
    assert any("NOT stored" in m for m in messages), messages
    assert not any(SECRET in m for m in messages)


def test_health(receiver):
    assert httpx.get(f"{receiver}/health").json() == {"status": "ok"}
    assert httpx.get(receiver).status_code == 405


def test_concurrent_notifications_are_all_stored_in_seq_order(receiver, sqlite_path):
    def send(n: int) -> int:
        return post(receiver, notification(ids=[n])).status_code

    threads = [threading.Thread(target=send, args=(n,)) for n in range(1, 21)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events = pending(sqlite_path)
    assert sorted(e.ids[0] for e in events) == list(range(1, 21))
    assert [e.seq for e in events] == sorted(e.seq for e in events)


# -- the inbox -------------------------------------------------------------------------------
def exercise_inbox(make: Callable[[], Inbox]) -> int:
    """What a run relies on, for either backend."""
    with make() as inbox:
        assert not inbox.exists()
        assert inbox.pending() == [] and inbox.prune(10) == 0
        assert not inbox.exists()  # reading creates nothing
        assert inbox.add(notification(ids=[1]))
        assert inbox.exists()
        assert not inbox.add(notification(ids=[1]))  # a replay
        assert inbox.add(notification(ids=[2], event="delete", updated_attributes=...))
        assert inbox.add(notification(ids=list(range(1000, 1030)), type="opportunity"))
        with pytest.raises(ValueError, match="ids"):
            inbox.add(notification(ids=["x"]))
    with make() as inbox:  # a second connection, as the run opens it
        events = inbox.pending()
        assert [e.ids[:2] for e in events] == [(1,), (2,), (1000, 1001)]
        assert len(events[2].ids) == 30 and events[2].type == "opportunity"
        assert events[0].updated_attributes == {"name": ["Old", "New"]}
        assert events[1].updated_attributes is None and events[1].event == "delete"
        assert all(e.received_at.utcoffset() == timedelta(0) for e in events)
        seqs = [e.seq for e in events]
        assert seqs == sorted(seqs) and len(set(seqs)) == 3
        assert [e.seq for e in inbox.pending(after=seqs[0])] == seqs[1:]
        assert inbox.prune(seqs[1]) == 2
        assert [e.seq for e in inbox.pending()] == seqs[2:]
        # a seq is never reused, even after the newest events were pruned
        assert inbox.prune(seqs[2]) == 1 and inbox.pending() == []
        assert inbox.add(notification(ids=[3]))
        [latest] = inbox.pending()
        assert latest.seq > seqs[2]
        # a pruned event's replay is stored again (applying it twice is harmless)
        assert inbox.add(notification(ids=[1]))
    return latest.seq


def test_a_recreated_inbox_continues_above_the_old_seqs(tmp_path):
    path = tmp_path / "copper_warehouse.duckdb.webhooks.sqlite"
    with SQLiteInbox(path) as inbox:
        inbox.add(notification(ids=[1]))
        [old] = inbox.pending()
    for file in tmp_path.glob("*.sqlite*"):
        file.unlink()
    with SQLiteInbox(path) as inbox:
        inbox.add(notification(ids=[2]))
        [new] = inbox.pending(after=old.seq)  # a run that applied `old` still sees it
    assert new.ids == (2,)


def test_sqlite_inbox(tmp_path):
    duckdb_path = tmp_path / "sub" / "warehouse.duckdb"
    exercise_inbox(lambda: Inbox.for_warehouse("duckdb", duckdb_path, "copper"))
    path = Path(f"{duckdb_path}.webhooks.sqlite")
    assert path.exists() and not duckdb_path.exists()
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as con:
        assert con.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_postgres_inbox(postgres_url, pg_dataset, monkeypatch):
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", postgres_url)  # as dlt reads it

    def make() -> Inbox:
        return Inbox.for_warehouse("postgres", Path("unused.duckdb"), pg_dataset)

    latest = exercise_inbox(make)
    import psycopg2

    with contextlib.closing(psycopg2.connect(postgres_url)) as con, con.cursor() as cur:
        cur.execute(f'select count(*) from "{pg_dataset}".{INBOX_TABLE}')
        assert cur.fetchone()[0] == 2
        cur.execute(f'drop schema "{pg_dataset}" cascade')  # a dropped dataset
        con.commit()
    with make() as inbox:
        assert not inbox.exists() and inbox.add(notification(ids=[9]))
        [event] = inbox.pending(after=latest)  # seqs stay above the dropped inbox's
        assert event.ids == (9,)


def test_postgres_receiver(postgres_url, pg_dataset):
    def factory() -> Inbox:
        return Inbox.for_warehouse("postgres", Path("x"), pg_dataset, postgres_dsn=postgres_url)

    with serve_app(make_app(factory, FIELD, SECRET)) as url:
        assert post(url, notification()).json() == {"stored": True}
        assert post(url, notification()).json() == {"stored": False}
        assert post(url, notification(**{FIELD: "wrong"})).status_code == 401
    with factory() as inbox:
        [event] = inbox.pending()
    assert event.ids == (101, 102) and event.updated_attributes == {"name": ["Old", "New"]}


def test_the_replay_key_ignores_secret_fields_and_key_order():
    a = notification()
    b = dict(reversed(list(notification(**{FIELD: "other", "key": "k"}).items())))
    assert payload_hash(a) == payload_hash(b)
    assert payload_hash(a) != payload_hash(notification(timestamp="2021-12-13T19:18:23.000Z"))


# -- the command line --------------------------------------------------------------------------
def wait_healthy(
    url: str, proc: subprocess.Popen, verify: str | None = None, timeout: float = 30
) -> None:
    context = ssl.create_default_context(cafile=verify) if verify else True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/health", timeout=1, verify=context).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError("receiver did not start")


@contextlib.contextmanager
def cli_receiver(
    cwd: Path, *args: str, env: dict | None = None, scheme: str = "http", verify: str | None = None
) -> Iterator[tuple[str, Popen]]:
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    full_env |= {"SOURCES__COPPER__WEBHOOK_SECRET": SECRET, "DLT_DATA_DIR": str(cwd / "dlt")}
    full_env |= env or {}
    proc = subprocess.Popen(
        [CLI, "webhooks", "serve", "--port", str(port), *args],
        cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, verify)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


Popen = subprocess.Popen


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_stored_events_survive_a_killed_receiver(tmp_path, destination, request):
    """200 means on disk: a receiver killed (SIGKILL) right after answering loses nothing."""
    args: tuple[str, ...] = ()
    env: dict[str, str] = {}
    if destination == "postgres":
        pg_url = request.getfixturevalue("postgres_url")
        dataset = request.getfixturevalue("pg_dataset")
        args = ("--destination", "postgres", "--dataset", dataset)
        env = {"DESTINATION__POSTGRES__CREDENTIALS": pg_url}

        def open_inbox() -> Inbox:
            return Inbox.for_warehouse("postgres", Path("x"), dataset, postgres_dsn=pg_url)
    else:

        def open_inbox() -> Inbox:
            return Inbox.for_warehouse("duckdb", tmp_path / "copper_warehouse.duckdb", "copper")

    with cli_receiver(tmp_path, *args, env=env) as (url, proc):
        for n in (1, 2, 3):
            assert post(url, notification(ids=[n])).json() == {"stored": True}
        assert post(url, notification(**{FIELD: "wrong-secret-value"})).status_code == 401
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        stderr = proc.stderr.read()
    assert proc.returncode == -signal.SIGKILL
    assert "receiving Copper webhooks on http://127.0.0.1" in stderr
    assert SECRET not in stderr and "wrong-secret-value" not in stderr
    with open_inbox() as inbox:  # read while no receiver runs
        assert [e.ids for e in inbox.pending()] == [(1,), (2,), (3,)]
    with cli_receiver(tmp_path, *args, env=env) as (url, _), open_inbox() as inbox:
        assert post(url, notification(ids=[2])).json() == {"stored": False}  # still known
        assert post(url, notification(ids=[4])).json() == {"stored": True}
        events = inbox.pending()  # read while the receiver runs, as a run does
        assert [e.ids for e in events] == [(1,), (2,), (3,), (4,)]
        assert inbox.prune(events[1].seq) == 2
        assert post(url, notification(ids=[5])).json() == {"stored": True}
        assert [e.ids for e in inbox.pending()] == [(3,), (4,), (5,)]
    if destination == "duckdb":
        assert not (tmp_path / "copper_warehouse.duckdb").exists()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("serve",), {}, "missing configuration: sources.copper.webhook_secret"),
        (("serve",), {"SOURCES__COPPER__WEBHOOK_SECRET": "short"}, "at least 16"),
        (("serve", "--secret-field", "ids"), {}, "bad --secret-field"),
        (("serve", "--certfile", "cert.pem"), {}, "give both"),
        (("serve", "--destination", "postgres"), {}, "missing configuration"),
        (("subscribe", "--target", "http://hooks.example.com/"), {}, "https://"),
        (("subscribe", "--target", "hooks.example.com"), {}, "https://"),
        (("subscribe", "--target", "https://h.example.com", "--events", "edit"), {}, "--events"),
        (("subscribe", "--target", "https://h.example.com", "--types", "people"), {}, "--types"),
        (("list",), {"SOURCES__COPPER__WEBHOOK_SECRET": ""}, "api_key"),
    ],
)
def test_bad_input_is_a_one_line_usage_error(tmp_path, args, env, message):
    env = {"SOURCES__COPPER__WEBHOOK_SECRET": SECRET, **env}
    env = {k: v for k, v in env.items() if v}
    if message.startswith("missing configuration: sources"):
        env.pop("SOURCES__COPPER__WEBHOOK_SECRET")
    # Copper would be unreachable: every refusal happens before any request
    env["SOURCES__COPPER__BASE_URL"] = f"http://127.0.0.1:{free_port()}/developer_api/v1"
    result = cli("webhooks", *args, cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    line = one_line_error(result)
    assert line.startswith(f"copper-pipeline webhooks {args[0]}: error:")
    assert message in line
    assert SECRET not in result.stderr + result.stdout
    assert not list(tmp_path.glob("*.sqlite"))


def test_a_body_that_never_ends_is_408(sqlite_path):
    app = make_app(lambda: SQLiteInbox(sqlite_path), FIELD, SECRET, body_timeout=0.5)
    with serve_app(app) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{"ids": [1')
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert post(url, notification()).status_code == 200  # the receiver carries on
    assert len(pending(sqlite_path)) == 1


def test_an_inbox_beside_a_relative_duckdb_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with Inbox.for_warehouse("duckdb", Path("copper_warehouse.duckdb"), "copper") as inbox:
        assert not inbox.exists()
        assert inbox.add(notification())
    with Inbox.for_warehouse("duckdb", Path("copper_warehouse.duckdb"), "copper") as inbox:
        assert inbox.exists() and len(inbox.pending()) == 1
    assert (tmp_path / "copper_warehouse.duckdb.webhooks.sqlite").exists()


def certificate(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A CA file, and a certificate for 127.0.0.1 it signed with its key (trustme)."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    paths = ca_file, cert, key = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    return paths


def test_serve_over_tls(tmp_path):
    ca_file, cert, key = certificate(tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    env["SOURCES__COPPER__WEBHOOK_SECRET"] = SECRET
    args = ["--port", str(port), "--certfile", str(cert), "--keyfile", str(key)]
    proc = subprocess.Popen(
        [CLI, "webhooks", "serve", *args], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    trusted = ssl.create_default_context(cafile=str(ca_file))
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "no TLS receiver"
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"{url}/health", verify=trusted, timeout=1)
                break
            time.sleep(0.1)
        response = httpx.post(url, content=orjson.dumps(notification()), verify=trusted)
        assert response.json() == {"stored": True}
        with pytest.raises(httpx.TransportError):  # plain http is not served
            httpx.post(f"http://127.0.0.1:{port}", content=b"{}", timeout=5)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert "receiving Copper webhooks on https://127.0.0.1" in proc.stderr.read()
    assert len(pending(tmp_path / "copper_warehouse.duckdb.webhooks.sqlite")) == 1


# -- subscriptions (the sandbox's /webhooks routes) --------------------------------------------
TARGET = "https://hooks.example.com/copper/webhooks"


def client_for(running) -> CopperClient:
    return CopperClient(Credentials(running.api_key, running.user_email), running.base_url)


def subscriptions(running) -> list[dict]:
    return [dict(s) for s in running.sandbox.account.webhooks]


def hooks_cli(*args: str, cwd: Path, running, env: dict | None = None):
    env = {"SOURCES__COPPER__WEBHOOK_SECRET": SECRET, **(env or {})}
    return cli("webhooks", *args, cwd=cwd, running=running, env=env, timeout=120)


def test_subscribe_list_remove(serve, tmp_path):
    with serve() as running:
        first = hooks_cli("subscribe", "--target", TARGET, cwd=tmp_path, running=running)
        assert first.returncode == 0, first.stderr
        made = subscriptions(running)
        assert {(s["type"], s["event"]) for s in made} == {
            (t, e) for t in TYPES for e in ("update", "delete")
        }
        assert len(made) == 14
        assert all(s["target"] == TARGET and s["secret"] == {FIELD: SECRET} for s in made)
        # idempotent: nothing new, nothing changed
        again = hooks_cli("subscribe", "--target", TARGET, cwd=tmp_path, running=running)
        assert again.returncode == 0, again.stderr
        assert "0 subscription(s)" in again.stdout and subscriptions(running) == made
        # another event type adds only what is missing
        new = hooks_cli("subscribe", "--target", TARGET, "--events", "new", "--types",
                        "person,task", cwd=tmp_path, running=running)  # fmt: skip
        assert new.returncode == 0, new.stderr
        assert len(subscriptions(running)) == 16

        listed = hooks_cli("list", cwd=tmp_path, running=running)
        assert listed.returncode == 0, listed.stderr
        assert "16 of 100 subscriptions" in listed.stdout
        assert TARGET in listed.stdout and FIELD in listed.stdout
        for result in (first, again, new, listed):
            assert SECRET not in result.stdout + result.stderr

        one = made[0]["id"]
        removed = hooks_cli("remove", "--id", str(one), cwd=tmp_path, running=running)
        assert removed.returncode == 0, removed.stderr
        assert one not in {s["id"] for s in subscriptions(running)}
        unknown = hooks_cli("remove", "--id", str(one), "--id", str(made[1]["id"]),
                            cwd=tmp_path, running=running)  # fmt: skip
        assert unknown.returncode == 2
        assert f"unknown webhook subscription id {one}" in one_line_error(unknown)
        assert len(subscriptions(running)) == 15  # refused before deleting any
        everything = hooks_cli("remove", "--target", TARGET, cwd=tmp_path, running=running)
        assert everything.returncode == 0, everything.stderr
        assert "15 subscription(s) removed" in everything.stdout
        assert subscriptions(running) == []
        assert "no webhook subscriptions" in hooks_cli("list", cwd=tmp_path, running=running).stdout


def test_subscribe_updates_a_rotated_secret(serve):
    rotated = SECRET[::-1]
    with serve() as running, contextlib.closing(client_for(running)) as client:
        subscribe(client, TARGET, FIELD, SECRET, events=["delete"], types=["lead"], log=print)
        [before] = subscriptions(running)
        changed = subscribe(client, TARGET, FIELD, rotated, events=["delete"], types=["lead"])
        [after] = subscriptions(running)
    assert [c["id"] for c in changed] == [before["id"]] == [after["id"]]
    assert after["secret"] == {FIELD: rotated}


def test_subscribe_refuses_past_copper_s_limit_before_creating_any(serve):
    with serve() as running, contextlib.closing(client_for(running)) as client:
        for n in range(90):
            client.request("POST", "/webhooks", {"target": f"https://other.example.com/{n}",
                                                 "type": "task", "event": "new"})  # fmt: skip
        with pytest.raises(RunError, match="limit of 100"):
            subscribe(client, TARGET, FIELD, SECRET)  # 14 more
        assert len(subscriptions(running)) == 90
        made = subscribe(client, TARGET, FIELD, SECRET, types=["person", "company"])
        assert len(made) == 4 and len(subscriptions(running)) == 94
        assert len(list_subscriptions(client)) == 94


@pytest.mark.parametrize(
    "target",
    ["http://hooks.example.com/", "ftp://hooks.example.com/", "https://", "https:///path",
     "hooks.example.com", "https://hooks.example.com:99999/", "https://hooks .example.com/"],
)  # fmt: skip
def test_subscribe_refuses_a_target_that_is_not_https_without_calling_copper(serve, target):
    with serve() as running, contextlib.closing(client_for(running)) as client:
        with pytest.raises(RunError, match="https://"):
            subscribe(client, target, FIELD, SECRET)
        assert running.stats()["by_path"] == {}
        assert subscriptions(running) == []


def test_remove_needs_a_target_or_ids(serve):
    with serve() as running, contextlib.closing(client_for(running)) as client:
        with pytest.raises(RunError, match="--target URL or --id N"):
            remove(client)
        subscribe(client, TARGET, FIELD, SECRET, types=["task"])
        subscribe(client, "https://other.example.com/", FIELD, SECRET, types=["task"])
        gone = remove(client, target=TARGET)
        assert {s["target"] for s in gone} == {TARGET} and len(gone) == 2
        assert {s["target"] for s in list_subscriptions(client)} == {"https://other.example.com/"}


def test_end_to_end_the_sandbox_delivers_to_the_receiver(serve, tmp_path):
    """subscribe, then Copper's (the sandbox's) notifications over HTTPS land in the inbox."""
    ca_file, cert, key = certificate(tmp_path)
    account = SandboxAccount.generate(seed=61, scale=0.05)
    config = {"webhook_ca_file": str(ca_file), "webhook_drop_rate": 0.0}
    tls = ("--certfile", str(cert), "--keyfile", str(key))
    with (
        serve(account, webhook_batch_seconds=0.2, **config) as running,
        cli_receiver(tmp_path, *tls, scheme="https", verify=str(ca_file)) as (url, _),
    ):
        target = f"{url}/copper/webhooks"
        result = hooks_cli("subscribe", "--target", target, cwd=tmp_path, running=running)
        assert result.returncode == 0, result.stderr
        people = [r["id"] for r in account.snapshot("people")[:3]]
        task = account.snapshot("tasks")[0]["id"]
        for n, person in enumerate(people):
            account.update("people", person, {"name": f"Renamed {n}"})
        account.delete("tasks", task)
        notifier = running.sandbox.notifier
        deadline = time.monotonic() + 30
        while notifier.stats()["pending"] or notifier.stats()["sent"] < 2:
            assert time.monotonic() < deadline, notifier.notifications()
            time.sleep(0.1)
        assert notifier.stats()["failed"] == 0, notifier.notifications()
    events = pending(tmp_path / "copper_warehouse.duckdb.webhooks.sqlite")
    updated = {i for e in events if (e.type, e.event) == ("person", "update") for i in e.ids}
    deleted = {i for e in events if (e.type, e.event) == ("task", "delete") for i in e.ids}
    assert updated == set(people) and deleted == {task}
    assert all(e.subscription_id and e.timestamp for e in events)
    assert all("name" in e.updated_attributes for e in events if e.event == "update")

"""The webhook inbox: Copper notifications stored durably until a run applies them.

One interface, two backends, chosen by the warehouse (`Inbox.for_warehouse`):

* DuckDB warehouse: a SQLite file beside the DuckDB file, `<duckdb path>.webhooks.sqlite`
  (stdlib `sqlite3`). DuckDB allows one writing process and a run holds its file for minutes,
  so the receiver never opens the .duckdb file. WAL mode (the run reads and prunes while the
  receiver writes), `synchronous=FULL`: `add` returns only once the event is on disk.
* Postgres warehouse: the table `_copper_webhook_inbox` in the dataset's schema (schema and
  table are created when missing), through psycopg2 with the credentials dlt uses for the
  postgres destination (`destination.postgres.credentials`, env
  `DESTINATION__POSTGRES__CREDENTIALS`). Each insert commits with `synchronous_commit=on`.

`seq` increases per inbox and is never reused, and events become visible in `seq` order (the
inserts of an inbox are serialised), so a reader that remembers the last `seq` it applied
never misses one. A new inbox starts at the current time in microseconds, so that holds even
when an inbox is deleted and created again. A notification delivered twice (same payload,
secret fields aside) is stored once: `payload_hash` (SHA-256 of the canonical JSON) is unique
among the stored events. Once an event is pruned its hash is gone, and a late replay is stored
again; applying it again is harmless (a delete of deleted ids, a re-fetch of current records).

Only Copper's own notification fields are stored (`PAYLOAD_FIELDS`); every other top-level
field of a notification is a secret field of its subscription and never reaches storage.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

INBOX_TABLE = "_copper_webhook_inbox"
SQLITE_SUFFIX = ".webhooks.sqlite"
# Copper's entity types with webhooks (`activity_log` are activities) and its events
TYPES = ("lead", "person", "company", "opportunity", "project", "task", "activity_log")
EVENTS = ("new", "update", "delete")
# the fields of a notification that are Copper's; any other is a secret field
PAYLOAD_FIELDS = ("ids", "type", "event", "subscription_id", "updated_attributes", "timestamp")
_INT64 = 2**63


@dataclass(frozen=True)
class WebhookEvent:
    seq: int  # increasing per inbox
    received_at: datetime  # aware UTC
    subscription_id: int | None
    type: str  # Copper's type: lead, person, company, opportunity, project, task, activity_log
    event: str  # new | update | delete
    ids: tuple[int, ...]
    timestamp: str | None  # Copper's ISO timestamp
    updated_attributes: dict | None


def without_secrets(payload: dict) -> dict:
    """Only Copper's notification fields (secret fields are every other top-level field)."""
    return {k: payload[k] for k in PAYLOAD_FIELDS if k in payload}


def payload_problem(payload: Any) -> str | None:
    """Why `payload` is not a Copper notification, in a few words; None when it is one."""
    if not isinstance(payload, dict):
        return "body must be a JSON object"
    ids = payload.get("ids")
    if (
        not isinstance(ids, list)
        or not ids
        or not all(type(i) is int and -_INT64 < i < _INT64 for i in ids)
    ):
        return "ids must be a non-empty list of integers"
    if payload.get("type") not in TYPES:
        return f"type must be one of {', '.join(TYPES)}"
    if payload.get("event") not in EVENTS:
        return f"event must be one of {', '.join(EVENTS)}"
    subscription = payload.get("subscription_id")
    if subscription is not None and (type(subscription) is not int or abs(subscription) >= _INT64):
        return "subscription_id must be an integer"
    if not isinstance(payload.get("timestamp"), str | None):
        return "timestamp must be a string"
    if not isinstance(payload.get("updated_attributes"), dict | None):
        return "updated_attributes must be an object"
    return None


def canonical_json(payload: dict) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def payload_hash(payload: dict) -> str:
    """The replay key: SHA-256 of the canonical JSON of the payload without secret fields."""
    return hashlib.sha256(canonical_json(without_secrets(payload)).encode()).hexdigest()


def _first_seq() -> int:
    """The first seq of a new inbox: microseconds since 1970. A reader that remembers the last
    seq it applied keeps working when an inbox is deleted and created again."""
    return time.time_ns() // 1000


def _checked(payload: dict) -> dict:
    problem = payload_problem(payload)
    if problem:
        raise ValueError(f"not a Copper notification: {problem}")
    return without_secrets(payload)


class Inbox:
    """Durable store of webhook events; a context manager. Thread-safe."""

    @classmethod
    def for_warehouse(
        cls, destination: str, duckdb_path: Path, dataset: str, *, postgres_dsn: str | None = None
    ) -> Inbox:
        """The inbox of a warehouse: SQLite beside a DuckDB file, or a table in Postgres
        (credentials the dlt way unless `postgres_dsn` is given). Nothing is created yet."""
        if destination == "duckdb":
            return SQLiteInbox(Path(f"{duckdb_path}{SQLITE_SUFFIX}"))
        if destination == "postgres":
            return PostgresInbox(postgres_dsn or dlt_postgres_dsn(), dataset)
        raise ValueError(f"unknown destination {destination!r}; choose duckdb or postgres")

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, payload: dict) -> bool:
        """Store one notification durably (secret fields already removed; any left are
        dropped). False when it was already stored (a replay). ValueError when `payload` is
        not a Copper notification."""
        raise NotImplementedError

    def pending(self, after: int = 0) -> list[WebhookEvent]:
        """Stored events with seq > `after`, in seq order."""
        raise NotImplementedError

    def prune(self, upto: int) -> int:
        """Delete the (applied) events with seq <= `upto`; how many were deleted."""
        raise NotImplementedError

    def exists(self) -> bool:
        """Whether the inbox's storage exists (without creating it)."""
        raise NotImplementedError

    def create(self) -> None:
        """Create the storage when missing (the receiver does at startup, to fail at once)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    @property
    def where(self) -> str:
        """Where the events are kept, for people."""
        raise NotImplementedError


def _event(
    seq: int,
    received_at: datetime,
    subscription_id: int | None,
    type_: str,
    event: str,
    ids: list[int],
    timestamp: str | None,
    updated_attributes: dict | None,
) -> WebhookEvent:
    return WebhookEvent(
        seq=int(seq),
        received_at=received_at.astimezone(UTC),
        subscription_id=subscription_id,
        type=type_,
        event=event,
        ids=tuple(int(i) for i in ids),
        timestamp=timestamp,
        updated_attributes=updated_attributes,
    )


class SQLiteInbox(Inbox):
    """The inbox of a DuckDB warehouse: a SQLite file (stdlib sqlite3), WAL, synchronous=FULL."""

    SCHEMA = f"""
        create table if not exists {INBOX_TABLE} (
            seq integer primary key autoincrement,  -- autoincrement: never reused after prune
            received_at text not null,
            payload_hash text not null unique,
            subscription_id integer,
            type text not null,
            event text not null,
            ids text not null,
            timestamp text,
            updated_attributes text
        )
    """

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        super().__init__()
        self.path = Path(path)
        self.timeout = timeout
        self._con: sqlite3.Connection | None = None

    @property
    def where(self) -> str:
        return f"SQLite file {self.path}"

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if self._con is not None:
            return self._con
        if not create and not self.path.exists():
            return None
        new_file = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            con.execute("pragma journal_mode=wal")
            con.execute("pragma synchronous=full")
            con.execute(f"pragma busy_timeout={int(self.timeout * 1000)}")
            with _sqlite_transaction(con):
                created = not con.execute(
                    "select 1 from sqlite_master where type = 'table' and name = ?", (INBOX_TABLE,)
                ).fetchone()
                con.execute(self.SCHEMA)
                if created:  # seqs of a recreated inbox stay above the old one's
                    con.execute(
                        "insert into sqlite_sequence (name, seq) values (?, ?)",
                        (INBOX_TABLE, _first_seq() - 1),
                    )
        except BaseException:
            con.close()
            raise
        if new_file:  # the new file's directory entry is durable too
            _fsync_dir(self.path.parent)
        self._con = con
        return con

    def create(self) -> None:
        with self._lock:
            self._connect(create=True)

    def exists(self) -> bool:
        with self._lock:
            if self._con is not None:
                return True
            if not self.path.exists():
                return False
            with contextlib.closing(
                sqlite3.connect(
                    f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=self.timeout
                )
            ) as con:
                row = con.execute(
                    "select 1 from sqlite_master where type = 'table' and name = ?", (INBOX_TABLE,)
                ).fetchone()
            return row is not None

    def add(self, payload: dict) -> bool:
        clean = _checked(payload)
        digest = payload_hash(clean)
        row = (
            datetime.now(UTC).isoformat(),
            digest,
            clean.get("subscription_id"),
            clean["type"],
            clean["event"],
            json.dumps(clean["ids"]),
            clean.get("timestamp"),
            None
            if clean.get("updated_attributes") is None
            else canonical_json(clean["updated_attributes"]),
        )
        with self._lock:
            con = self._connect(create=True)
            assert con is not None
            with _sqlite_transaction(con):
                cursor = con.execute(
                    f"insert into {INBOX_TABLE} (received_at, payload_hash, subscription_id, "
                    "type, event, ids, timestamp, updated_attributes) "
                    "values (?, ?, ?, ?, ?, ?, ?, ?) on conflict (payload_hash) do nothing",
                    row,
                )
                return cursor.rowcount == 1

    def pending(self, after: int = 0) -> list[WebhookEvent]:
        with self._lock:
            con = self._connect(create=False)
            if con is None:
                return []
            rows = con.execute(
                "select seq, received_at, subscription_id, type, event, ids, timestamp, "
                f"updated_attributes from {INBOX_TABLE} where seq > ? order by seq",
                (after,),
            ).fetchall()
        return [
            _event(
                seq, datetime.fromisoformat(received), sub, type_, event, json.loads(ids), ts,
                None if attrs is None else json.loads(attrs),
            )
            for seq, received, sub, type_, event, ids, ts, attrs in rows
        ]  # fmt: skip

    def prune(self, upto: int) -> int:
        with self._lock:
            con = self._connect(create=False)
            if con is None:
                return 0
            with _sqlite_transaction(con):
                return con.execute(f"delete from {INBOX_TABLE} where seq <= ?", (upto,)).rowcount

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None


@contextlib.contextmanager
def _sqlite_transaction(con: sqlite3.Connection) -> Iterator[None]:
    con.execute("begin immediate")
    try:
        yield
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def dlt_postgres_dsn() -> str:
    """The postgres destination's credentials as dlt resolves them, as a libpq URL."""
    from dlt.common.configuration import resolve_configuration
    from dlt.destinations.impl.postgres.configuration import PostgresCredentials

    credentials = resolve_configuration(PostgresCredentials(), sections=("destination", "postgres"))
    return credentials.to_native_representation()


class PostgresInbox(Inbox):
    """The inbox of a Postgres warehouse: `<dataset>._copper_webhook_inbox`, via psycopg2."""

    def __init__(self, dsn: str, dataset: str) -> None:
        super().__init__()
        if not dataset:
            raise ValueError("bad dataset: empty")
        self.dsn = dsn
        self.dataset = dataset
        self._con: Any = None

    def __repr__(self) -> str:  # the DSN holds the password
        return f"PostgresInbox(dataset={self.dataset!r})"

    @property
    def where(self) -> str:
        return f"Postgres table {self.dataset}.{INBOX_TABLE}"

    def _table(self) -> Any:
        from psycopg2 import sql

        return sql.Identifier(self.dataset, INBOX_TABLE)

    def _connection(self) -> Any:
        import psycopg2

        if self._con is None or self._con.closed:
            self._con = psycopg2.connect(self.dsn)
            with self._con, self._con.cursor() as cur:
                cur.execute("set synchronous_commit = on")  # durable when add() returns
        return self._con

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        """A cursor in a transaction, committed on success; a broken connection is dropped."""
        import psycopg2

        with self._lock:
            con = self._connection()
            try:
                with con, con.cursor() as cur:
                    yield cur
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                self.close()
                raise

    def _ensure(self, cur: Any) -> None:
        from psycopg2 import sql

        cur.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(self.dataset)))
        cur.execute(
            sql.SQL(
                """
                create table if not exists {} (
                    seq bigint generated always as identity (start with {}) primary key,
                    received_at timestamptz not null default now(),
                    payload_hash text not null unique,
                    subscription_id bigint,
                    type text not null,
                    event text not null,
                    ids bigint[] not null,
                    timestamp text,
                    updated_attributes jsonb
                )
                """
            ).format(self._table(), sql.Literal(_first_seq()))
        )

    def _lock_inbox(self, cur: Any) -> None:
        """Serialise the inbox's writers until commit: seqs then commit in order, and
        concurrent `create ... if not exists` cannot collide."""
        cur.execute(
            "select pg_advisory_xact_lock(hashtext(%s))", (f"copper-webhook-inbox:{self.dataset}",)
        )

    def create(self) -> None:
        with self._cursor() as cur:
            self._lock_inbox(cur)
            self._ensure(cur)

    def _exists(self, cur: Any) -> bool:
        cur.execute("select to_regclass(format('%%I.%%I', %s, %s))", (self.dataset, INBOX_TABLE))
        return cur.fetchone()[0] is not None

    def exists(self) -> bool:
        with self._cursor() as cur:
            return self._exists(cur)

    def add(self, payload: dict) -> bool:
        from psycopg2 import sql
        from psycopg2.extras import Json

        clean = _checked(payload)
        attrs = clean.get("updated_attributes")
        with self._cursor() as cur:
            self._lock_inbox(cur)
            self._ensure(cur)  # cheap, and a dropped dataset cannot lose the next event
            cur.execute(
                sql.SQL(
                    "insert into {} (payload_hash, subscription_id, type, event, ids, timestamp, "
                    "updated_attributes) values (%s, %s, %s, %s, %s, %s, %s) "
                    "on conflict (payload_hash) do nothing returning seq"
                ).format(self._table()),
                (
                    payload_hash(clean), clean.get("subscription_id"), clean["type"],
                    clean["event"], clean["ids"], clean.get("timestamp"),
                    None if attrs is None else Json(attrs),
                ),
            )  # fmt: skip
            return cur.fetchone() is not None

    def pending(self, after: int = 0) -> list[WebhookEvent]:
        from psycopg2 import sql

        with self._cursor() as cur:
            if not self._exists(cur):
                return []
            cur.execute(
                sql.SQL(
                    "select seq, received_at, subscription_id, type, event, ids, timestamp, "
                    "updated_attributes from {} where seq > %s order by seq"
                ).format(self._table()),
                (after,),
            )
            rows = cur.fetchall()
        return [_event(*row) for row in rows]

    def prune(self, upto: int) -> int:
        from psycopg2 import sql

        with self._cursor() as cur:
            if not self._exists(cur):
                return 0
            cur.execute(sql.SQL("delete from {} where seq <= %s").format(self._table()), (upto,))
            return cur.rowcount

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                with contextlib.suppress(Exception):
                    self._con.close()
                self._con = None

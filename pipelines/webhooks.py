"""`copper-pipeline webhooks serve`: receive Copper's notifications into the webhook inbox.

Copper POSTs `{"ids": [...], "type": ..., "event": ..., "subscription_id": ..., "timestamp": ...,
<secret fields>}` (up to 30 ids) to an https:// target, at most once and never again, whatever
the answer. So the receiver answers 200 only once the event is durably stored in the
warehouse's inbox (`pipelines/webhook_inbox.py`); the next `copper-pipeline run` applies delete
events and re-fetches updated ids.

    POST /  (and POST /copper/webhooks)
        413  body larger than `max_body` (Content-Length, or the bytes actually sent)
        408  body not received within `body_timeout` seconds
        400  not JSON, not an object, no `ids` list of integers, unknown `type` or `event`
        401  the subscription's secret field is missing or wrong; nothing is stored
        503  the inbox could not store it (logged)
        200  {"stored": true}, or {"stored": false} for a notification already stored
    GET /health  200 {"status": "ok"}

The secret is `sources.copper.webhook_secret` (env `SOURCES__COPPER__WEBHOOK_SECRET`, or
.dlt/secrets.toml), sent by Copper in the field `copper_webhook_secret` (`--secret-field`), and
compared in constant time. It is never logged, and secret fields are never stored.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import ipaddress
import logging
import sys
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .check import copper_setting
from .runner import RunError, RunOptions, explained
from .webhook_inbox import PAYLOAD_FIELDS, Inbox, payload_problem, without_secrets

log = logging.getLogger("copper.webhooks")

DEFAULT_SECRET_FIELD = "copper_webhook_secret"
SECRET_SETTING = "webhook_secret"  # sources.copper.webhook_secret
MIN_SECRET_LENGTH = 16
MAX_BODY = 64 * 1024
PATHS = ("/", "/copper/webhooks")
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8088

InboxFactory = Callable[[], Inbox]


class _Storage:
    """One inbox for the app, opened on first use; reopened after a failure (a Postgres
    restart, a dropped connection)."""

    def __init__(self, factory: InboxFactory) -> None:
        self.factory = factory
        self._inbox: Inbox | None = None
        self._lock = threading.Lock()

    def add(self, payload: dict) -> bool:
        with self._lock:
            if self._inbox is None:
                self._inbox = self.factory()
            try:
                return self._inbox.add(payload)
            except Exception:
                self._close()
                raise

    def _close(self) -> None:
        inbox, self._inbox = self._inbox, None
        if inbox is not None:
            with contextlib.suppress(Exception):
                inbox.close()

    def close(self) -> None:
        with self._lock:
            self._close()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def make_app(
    inbox_factory: InboxFactory,
    secret_field: str,
    secret: str,
    max_body: int = MAX_BODY,
    body_timeout: float = 30.0,
) -> Starlette:
    """The receiver: an ASGI app storing verified notifications into `inbox_factory()`,
    opened on the first notification (and again after a storage failure)."""
    check_secret_field(secret_field)
    check_secret(secret)
    expected = secret.encode()
    storage = _Storage(inbox_factory)

    async def receive(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                return _error(400, "bad Content-Length")
            if int(declared) > max_body:
                return _error(413, f"body larger than {max_body} bytes")
        body = bytearray()
        try:
            async with asyncio.timeout(body_timeout):
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > max_body:
                        return _error(413, f"body larger than {max_body} bytes")
        except ClientDisconnect:
            log.warning("webhook sender disconnected before its body ended; nothing stored")
            return _error(400, "body incomplete")
        except TimeoutError:
            return _error(408, f"body not received within {body_timeout:g} seconds")
        try:
            payload = orjson.loads(bytes(body))
        except orjson.JSONDecodeError:
            return _error(400, "body is not JSON")
        problem = payload_problem(payload)
        if problem:
            return _error(400, problem)
        sent = payload.get(secret_field)
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), expected):
            log.warning(
                "webhook refused (401): secret field %r %s; from %s",
                secret_field, "missing" if sent is None else "wrong", _client(request),
            )  # fmt: skip
            return _error(401, "secret missing or wrong")
        clean = without_secrets(payload)
        try:
            stored = await run_in_threadpool(storage.add, clean)
        except Exception as exc:
            log.error(
                "webhook NOT stored (503): %s %s of %d ids (subscription %s): %s: %s",
                clean["type"], clean["event"], len(clean["ids"]), clean.get("subscription_id"),
                type(exc).__name__, _first_line(exc),
            )  # fmt: skip
            return _error(503, "could not store the notification")
        return JSONResponse({"stored": stored})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            storage.close()

    routes = [Route(path, receive, methods=["POST"]) for path in PATHS]
    routes.append(Route("/health", health, methods=["GET"]))
    return Starlette(routes=routes, lifespan=lifespan)


def check_secret_field(name: str) -> str:
    if not name or name in PAYLOAD_FIELDS:
        raise RunError(
            f"bad --secret-field {name!r}: it must not be empty nor one of Copper's own fields "
            f"({', '.join(PAYLOAD_FIELDS)})"
        )
    return name


def check_secret(secret: str | None) -> str:
    if not secret:
        raise RunError(
            f"missing configuration: sources.copper.{SECRET_SETTING} (env "
            f"SOURCES__COPPER__{SECRET_SETTING.upper()}, or .dlt/secrets.toml), the value Copper "
            "sends in the webhook secret field"
        )
    if len(secret) < MIN_SECRET_LENGTH:
        raise RunError(
            f"bad sources.copper.{SECRET_SETTING}: use at least {MIN_SECRET_LENGTH} random "
            "characters, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return secret


def webhook_secret() -> str:
    """`sources.copper.webhook_secret`, resolved the dlt way; never printed."""
    value = copper_setting(SECRET_SETTING)
    return check_secret(None if value is None else str(value))


def serve(
    app: Any,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    certfile: Path | None = None,
    keyfile: Path | None = None,
    log_level: str = "info",
) -> None:
    """Run `app` with uvicorn until SIGINT/SIGTERM; TLS with `certfile` and `keyfile`."""
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
        log_level=log_level,
        server_header=False,
        lifespan="on",
    )


def inbox_factory(options: RunOptions) -> InboxFactory:
    """Open the warehouse's inbox, as configured for `copper-pipeline run`."""
    options.validate()
    if options.destination == "postgres":
        from .webhook_inbox import dlt_postgres_dsn

        with explained(options):
            dsn = dlt_postgres_dsn()  # resolved once: a missing setting fails at startup
        return lambda: Inbox.for_warehouse(
            "postgres", options.duckdb_path, options.dataset, postgres_dsn=dsn
        )
    return lambda: Inbox.for_warehouse("duckdb", options.duckdb_path, options.dataset)


# -- command line (`copper-pipeline webhooks ...`, wired in pipelines/cli.py) ------------------
def add_parser(sub: Any, warehouse_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """The `webhooks` subcommand group."""
    hooks = sub.add_parser("webhooks", help="receive Copper webhooks; manage subscriptions")
    actions = hooks.add_subparsers(dest="webhooks_command", required=True)

    serve_p = actions.add_parser("serve", help="receive notifications into the warehouse inbox")
    serve_p.add_argument("--host", default=DEFAULT_HOST)
    serve_p.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve_p.add_argument("--certfile", type=Path, help="TLS certificate (PEM); with --keyfile")
    serve_p.add_argument("--keyfile", type=Path, help="TLS private key (PEM)")
    warehouse_args(serve_p)

    subscribe_p = actions.add_parser("subscribe", help="register the webhook subscriptions")
    subscribe_p.add_argument("--target", required=True, help="https:// URL of the receiver")
    subscribe_p.add_argument("--events", default="update,delete", help="from: new,update,delete")
    subscribe_p.add_argument(
        "--types", help="default all: lead,person,company,opportunity,project,task,activity_log"
    )

    actions.add_parser("list", help="show the account's webhook subscriptions")

    remove_p = actions.add_parser("remove", help="delete webhook subscriptions")
    which = remove_p.add_mutually_exclusive_group(required=True)
    which.add_argument("--target", help="every subscription of this URL")
    which.add_argument(
        "--id", dest="ids", type=int, action="append", metavar="N", help="repeatable"
    )
    for p in (serve_p, subscribe_p):
        p.add_argument(
            "--secret-field",
            default=DEFAULT_SECRET_FIELD,
            help=f"the notification field holding the secret (default {DEFAULT_SECRET_FIELD})",
        )
    for p in (hooks, *actions.choices.values()):
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)


def command(args: argparse.Namespace) -> int:
    """Run `copper-pipeline webhooks <action>`; RunError for a one-line failure."""
    action = args.webhooks_command
    if action == "serve":
        return _serve(args)
    from . import webhook_subscriptions as subs

    if action == "subscribe":
        field = check_secret_field(args.secret_field)
        secret = webhook_secret()
        subs.check_target(args.target)  # before any call to Copper
        events = args.events.split(",")
        types = args.types.split(",") if args.types else list(subs.TYPES)
        subs.check_choices(events, subs.EVENTS, "--events")
        subs.check_choices(types, subs.TYPES, "--types")
        with _copper() as client:
            changed = subs.subscribe(client, args.target, field, secret, events, types)
        print(f"{len(changed)} subscription(s) created or updated for {args.target}")
        return 0
    if action == "list":
        with _copper() as client:
            print(subs.table(subs.list_subscriptions(client)))
        return 0
    with _copper() as client:
        removed = subs.remove(client, target=args.target, ids=args.ids)
    print(f"{len(removed)} subscription(s) removed")
    return 0


@contextlib.contextmanager
def _copper() -> Any:
    from .webhook_subscriptions import make_client

    options = RunOptions()
    client = make_client()
    try:
        with explained(options):
            yield client
    finally:
        client.close()


def _serve(args: argparse.Namespace) -> int:
    options = RunOptions(
        destination=args.destination, duckdb_path=args.duckdb_path, dataset=args.dataset
    )
    field = check_secret_field(args.secret_field)
    secret = webhook_secret()
    if bool(args.certfile) != bool(args.keyfile):
        raise RunError("bad --certfile/--keyfile: give both, or neither")
    for path in (args.certfile, args.keyfile):
        if path and not Path(path).is_file():
            raise RunError(f"bad --certfile/--keyfile: no file {path}")
    if not 0 < args.port < 65536:
        raise RunError(f"bad --port {args.port}")
    factory = inbox_factory(options)
    with explained(options), factory() as inbox:
        inbox.create()  # unreachable Postgres, an unwritable directory: fail now, not per event
        where = inbox.where
    scheme = "https" if args.certfile else "http"
    print(
        f"receiving Copper webhooks on {scheme}://{args.host}:{args.port}/ into {where}",
        file=sys.stderr,
        flush=True,
    )
    if not args.certfile and not _is_loopback(args.host):
        print(
            f"warning: plain http on {args.host}; Copper only calls https:// targets: put a TLS "
            "reverse proxy in front, or pass --certfile and --keyfile",
            file=sys.stderr,
            flush=True,
        )
    serve(make_app(factory, field, secret), args.host, args.port, args.certfile, args.keyfile)
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _client(request: Request) -> str:
    return f"{request.client.host}" if request.client else "unknown"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ""

"""`copper-sandbox serve`: a simulated Copper account on a real HTTP port."""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time

import uvicorn

from .account import SandboxAccount
from .app import API_PREFIX, Sandbox
from .chaos import SandboxConfig
from .generator import ENTITIES


def _counts(pairs: list[str]) -> dict[str, int]:
    counts = {}
    for pair in pairs:
        entity, _, n = pair.partition("=")
        if entity not in ENTITIES or not n.isdigit():
            raise argparse.ArgumentTypeError(f"--count wants ENTITY=N with ENTITY in {ENTITIES}")
        counts[entity] = int(n)
    return counts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="copper-sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve a seeded simulated account over HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument("--scale", type=float, default=1.0, help="account size multiplier")
    serve.add_argument(
        "--count",
        action="append",
        default=[],
        metavar="ENTITY=N",
        help="exact record count for one entity (repeatable)",
    )
    serve.add_argument(
        "--burst",
        type=int,
        default=0,
        help="records of --burst-entity sharing one date_modified second",
    )
    serve.add_argument("--burst-entity", default="people", choices=ENTITIES)
    serve.add_argument("--api-key", default="sandbox-key")
    serve.add_argument("--user-email", default="admin@sandbox.example")
    serve.add_argument("--admin-token", default=None, help="default: a random token")
    serve.add_argument("--rate-limit", type=int, default=180, help="requests per window")
    serve.add_argument("--window", type=float, default=60.0, help="rate-limit window, seconds")
    serve.add_argument("--retry-after", action="store_true", help="send Retry-After on 429")
    serve.add_argument("--latency", type=float, default=0.0, help="seconds per response")
    serve.add_argument("--jitter", type=float, default=0.0, help="+- seconds around latency")
    serve.add_argument(
        "--webhook-drop-rate", type=float, default=0.05, help="share of webhooks lost on purpose"
    )
    serve.add_argument(
        "--webhook-ca-file", default=None, help="PEM CA bundle to trust for webhook targets"
    )
    serve.add_argument("--json", action="store_true", help="print connection details as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    account = SandboxAccount.generate(
        seed=args.seed,
        scale=args.scale,
        counts=_counts(args.count) or None,
        burst=args.burst,
        burst_entity=args.burst_entity,
    )
    config = SandboxConfig(
        requests_per_window=args.rate_limit,
        window_seconds=args.window,
        retry_after=args.retry_after,
        latency=args.latency,
        jitter=args.jitter,
        webhook_drop_rate=args.webhook_drop_rate,
        webhook_ca_file=args.webhook_ca_file,
        seed=args.seed,
    )
    sandbox = Sandbox(
        account,
        config,
        api_key=args.api_key,
        user_email=args.user_email,
        admin_token=args.admin_token,
    )
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms Nagle stalls
    sock.bind((args.host, args.port))
    host, port = sock.getsockname()[:2]
    root = f"http://{host}:{port}"
    info = {
        "root_url": root,
        "base_url": root + API_PREFIX,
        "api_key": args.api_key,
        "user_email": args.user_email,
        "admin_token": sandbox.admin_token,
        "records": {e: account.count(e) for e in ENTITIES},
    }
    if args.json:
        print(json.dumps(info), flush=True)
    else:
        print(f"Copper sandbox ready in {time.monotonic() - started:.1f}s: {info['base_url']}")
        print(f"  api key {args.api_key!r}, user email {args.user_email!r}")
        print(f"  records: {info['records']}")
        print(f"  stats: {root}/_sandbox/stats  (admin token: {sandbox.admin_token})", flush=True)
    server = uvicorn.Server(
        uvicorn.Config(sandbox.app, log_level="warning", access_log=False, lifespan="off")
    )
    try:
        server.run(sockets=[sock])  # returns on SIGTERM / SIGINT
    finally:
        sandbox.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

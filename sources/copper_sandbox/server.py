"""Serve a sandbox over HTTP: in a background thread (tests) or a child process (benchmarks).

Either way the sandbox's webhook delivery threads stop with the server.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from .app import ADMIN_HEADER, API_PREFIX, Sandbox


@dataclass
class RunningSandbox:
    """Where a served sandbox listens, and how to talk to its admin routes."""

    root_url: str
    admin_token: str
    api_key: str
    user_email: str
    sandbox: Sandbox | None = None  # set when served in this process
    info: dict = field(default_factory=dict)  # what `copper-sandbox serve --json` printed

    @property
    def base_url(self) -> str:
        """The Copper base URL equivalent (…/developer_api/v1)."""
        return self.root_url + API_PREFIX

    def admin(self, method: str, path: str, json_body: Any = None) -> Any:
        """Call an admin route (/_sandbox/...), raising on an error status."""
        response = httpx.request(
            method,
            f"{self.root_url}/_sandbox{path}",
            json=json_body,
            headers={ADMIN_HEADER: self.admin_token},
            timeout=120,
        )
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict:
        return httpx.get(f"{self.root_url}/_sandbox/stats", timeout=30).json()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_in_thread(sandbox: Sandbox, host: str = "127.0.0.1") -> Iterator[RunningSandbox]:
    """Serve `sandbox` on a free loopback port from a daemon thread; stop on exit."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms Nagle stalls
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(sandbox.app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    sandbox.open()
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            sandbox.close()
            raise RuntimeError("sandbox server did not start")
        time.sleep(0.01)
    try:
        yield RunningSandbox(
            f"http://{host}:{port}",
            sandbox.admin_token,
            sandbox.api_key,
            sandbox.user_email,
            sandbox,
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        sandbox.close()  # webhook delivery stops with the server


@contextlib.contextmanager
def serve_in_subprocess(*args: str, timeout: float = 300) -> Iterator[RunningSandbox]:
    """Run `copper-sandbox serve --port 0 ARGS` in a child process (its own CPU and GIL)."""
    cmd = [sys.executable, "-m", "copper_sandbox.cli", "serve", "--port", "0", "--json", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"sandbox exited with {proc.wait(timeout)} before serving")
        info = json.loads(line)
        yield RunningSandbox(
            info["root_url"], info["admin_token"], info["api_key"], info["user_email"], info=info
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()

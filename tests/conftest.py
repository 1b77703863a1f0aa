"""Shared fixtures: sandbox accounts served over real HTTP on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from copper_sandbox import RunningSandbox, Sandbox, SandboxAccount, SandboxConfig, serve_in_thread

from .postgres import pg_dataset, postgres_url  # noqa: F401

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")  # tests never call home


def copper_headers(running: RunningSandbox) -> dict[str, str]:
    return {
        "X-PW-AccessToken": running.api_key,
        "X-PW-UserEmail": running.user_email,
        "X-PW-Application": "developer_api",
    }


@pytest.fixture
def serve():
    """Serve a fresh sandbox: `with serve(account, **config) as running: ...`."""

    def _serve(account: SandboxAccount | None = None, **config):
        account = account or SandboxAccount.generate(seed=7, scale=0.05)
        config.setdefault("requests_per_window", 10_000)
        return serve_in_thread(Sandbox(account, SandboxConfig(**config)))

    return _serve


@pytest.fixture
def api(serve) -> Iterator[tuple[httpx.Client, RunningSandbox]]:
    """An authenticated httpx client on a small sandbox with no rate limit."""
    with (
        serve() as running,
        httpx.Client(
            base_url=running.base_url, headers=copper_headers(running), timeout=30
        ) as client,
    ):
        yield client, running

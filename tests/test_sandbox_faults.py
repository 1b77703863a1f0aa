"""The sandbox's fault kinds for runs that fail midway: a key revoked (401) or a role withdrawn
(403) at the K-th request, a garbled 200 body, and 429 storms whatever the rate limit."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from copper_sandbox.app import UNAUTHENTICATED
from copper_sandbox.chaos import FAULT_KINDS, SandboxConfig

from .conftest import copper_headers


def client_for(running) -> httpx.Client:
    return httpx.Client(base_url=running.base_url, headers=copper_headers(running), timeout=30)


@pytest.mark.parametrize(("kind", "message"), [("401", UNAUTHENTICATED), ("403", "permission")])
def test_a_key_revoked_midway_is_refused_like_bad_credentials(serve, kind, message):
    with serve(scripted_faults={2: kind, 3: kind}) as running, client_for(running) as client:
        first = client.post("/people/search", json={"page_size": 5})
        refused = [client.post("/people/search", json={"page_size": 5}) for _ in range(2)]
        after = client.post("/people/search", json={"page_size": 5})  # the key works again
    assert first.status_code == after.status_code == 200
    for r in refused:
        assert r.status_code == int(kind)
        assert r.json() == {"success": False, "status": int(kind), "message": r.json()["message"]}
        assert message in r.json()["message"]
    if kind == "401":  # exactly what Copper answers a wrong key
        assert refused[0].json()["message"] == UNAUTHENTICATED


def test_malformed_is_a_200_of_the_full_length_that_is_not_json(serve):
    with serve(scripted_faults={1: "malformed"}) as running, client_for(running) as client:
        garbled = client.post("/people/search", json={"page_size": 50})
        good = client.post("/people/search", json={"page_size": 50})
    assert garbled.status_code == 200 and len(garbled.content) == len(good.content)
    with pytest.raises(ValueError):  # not JSON, not even UTF-8
        json.loads(garbled.content)
    assert len(good.json()) == 50


@pytest.mark.parametrize("retry_after", [False, True])
def test_a_429_storm_refuses_under_any_limit_and_is_not_counted(serve, retry_after):
    with (
        serve(scripted_faults={1: "429", 2: "429"}, retry_after=retry_after) as running,
        client_for(running) as client,
    ):
        statuses = [client.get("/account") for _ in range(3)]
        stats = running.stats()
    assert [r.status_code for r in statuses] == [429, 429, 200]
    assert ("Retry-After" in statuses[0].headers) is retry_after
    assert stats["by_status"] == {"429": 2, "200": 1}
    assert running.sandbox.chaos.limiter._times and len(running.sandbox.chaos.limiter._times) == 1


def test_every_fault_kind_is_accepted_by_the_config():
    config = SandboxConfig()
    config.update(faults=dict.fromkeys(FAULT_KINDS, 0.01))
    with pytest.raises(ValueError, match="unknown fault kind"):
        config.update(faults={"418": 1.0})


def test_a_client_gone_during_a_hang_is_not_an_error_of_the_sandbox(serve):
    """A client that timed out during a hang has left before its body was read: the sandbox
    drops the request (counted as 499, nginx's "client closed request"), raising nothing."""
    with serve(scripted_faults={1: "hang"}, hang_seconds=0.6) as running:
        with client_for(running) as client, pytest.raises(httpx.ReadTimeout):
            client.post("/people/search", json={"page_size": 5}, timeout=0.2)
        time.sleep(0.8)
        with client_for(running) as client:
            assert client.post("/people/search", json={"page_size": 5}).status_code == 200
        assert running.stats()["by_status"] == {"499": 1, "200": 1}

"""The Copper client alone: request budget, retries, errors naming the request, no secrets."""

from __future__ import annotations

import gc
import logging
import threading
import time

import httpx
import msgspec
import orjson
import pytest

from copper.client import CopperClient, CopperError, Credentials, Page, _parsed
from copper.rate_limit import RequestBudget
from copper_sandbox import SandboxAccount


def client_for(running, **options) -> CopperClient:
    credentials = Credentials(api_key=running.api_key, user_email=running.user_email)
    return CopperClient(credentials, running.base_url, **options)


def test_secrets_never_appear_in_reprs_errors_or_logs(serve, caplog):
    with serve(scripted_faults={1: "503"}) as running:
        running.api_key = "super-secret-key"
        running.sandbox.api_key = "super-secret-key"
        client = client_for(running, max_backoff=0.1)
        with caplog.at_level(logging.DEBUG):
            client.get("/account")
            bad = CopperClient(Credentials(api_key="other-secret", user_email="x@y.z"),
                               running.base_url)  # fmt: skip
            with pytest.raises(CopperError) as err:
                bad.get("/account")
    text = " ".join([repr(client), repr(client._http.headers), str(err.value), caplog.text])
    text += repr(Credentials(api_key="super-secret-key", user_email="a@b.c"))
    assert "super-secret-key" not in text.replace(repr(client._http.headers), "")
    assert "other-secret" not in text
    assert "retry" in caplog.text  # the 503 was logged, without the key


def test_a_read_response_is_freed_without_the_cyclic_gc(serve):
    """A page's body is freed when the page is parsed, not at the next full GC (the extract's
    memory would grow with the records otherwise)."""
    with serve() as running:
        client = client_for(running)
        client.search("people", {"page_size": 200})
        gc.collect()
        gc.disable()
        try:
            for _ in range(5):
                rows, _ = client.search("people", {"page_size": 200})
            alive = [o for o in gc.get_objects() if isinstance(o, httpx.Response)]
        finally:
            gc.enable()
    assert rows and not alive


def test_client_errors_are_not_retried_and_name_the_request(serve):
    with serve() as running:
        client = client_for(running)
        with pytest.raises(CopperError) as err:
            client.search("people", {"page_size": 500}, context="people window 2024")
        assert running.stats()["requests"] == 1
    message = str(err.value)
    assert "POST /people/search" in message and "422" in message and "window 2024" in message
    assert "page_size" in message


def test_retries_give_up_with_a_clear_error(serve):
    with serve(faults={"500": 1.0}) as running:
        client = client_for(running, max_attempts=3, max_backoff=0.05)
        with pytest.raises(CopperError, match="failed after 3 attempts: HTTP 500"):
            client.get("/account")
        assert running.stats()["by_status"] == {"500": 3}


def test_retry_after_is_honoured(serve):
    with serve(requests_per_window=2, window_seconds=2.0, retry_after=True) as running:
        client = client_for(running, requests_per_minute=10_000, max_backoff=0.01)
        started = time.monotonic()
        for _ in range(3):
            client.get("/account")
        elapsed = time.monotonic() - started
        assert client.stats.throttled >= 1
    assert elapsed >= 1.0  # waited for Retry-After, not the 0.01 s backoff


def test_budget_never_lets_more_than_n_requests_into_any_window():
    """Slots are held from send until `window` after the response: with variable latency, the
    server (which counts arrivals) never sees more than `limit` in any window."""
    budget = RequestBudget(limit=10, window=0.5)
    sends: list[float] = []
    lock = threading.Lock()

    def worker(latency: float) -> None:
        for _ in range(6):
            with budget.slot():
                with lock:
                    sends.append(time.monotonic())
                time.sleep(latency)

    threads = [threading.Thread(target=worker, args=(0.01 * (i % 4),)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sends.sort()
    assert len(sends) == 30
    for i, t in enumerate(sends):
        assert sum(1 for s in sends[i:] if s - t < 0.5) <= 10
    assert budget.waits > 0


def test_the_shared_budget_keeps_parallel_resources_under_the_limit(serve, tmp_path):
    from .warehouse import Loader

    account = SandboxAccount.generate(seed=9, scale=0.2)
    with serve(account, requests_per_window=30, window_seconds=2.0) as running:
        loader = Loader(tmp_path, running)
        source = loader.source(
            requests_per_minute=900, rate_limit_window=2.0, max_window_records=500
        )  # 30 per rolling 2 s, as the sandbox counts
        info = loader.pipeline.run(source)
        info.raise_on_failed_jobs()
        assert running.stats()["by_status"].get("429", 0) == 0


def test_light_pages_hold_the_keys_asked_for_and_the_whole_json():
    """A walk's page (`keys`): only those keys of each record, the records from the JSON; a
    body that is not a list of objects is read whole, malformed JSON is retried."""
    raw = orjson.dumps([{"id": 1, "date_created": 5, "name": "a"}, {"id": 2, "name": "b"}])
    page = _parsed(raw, ("id", "date_created"))
    assert isinstance(page, Page) and page.light
    assert list(page) == [{"id": 1, "date_created": 5}, {"id": 2}]
    assert page.subset([1]).records() == [{"id": 2, "name": "b"}]
    assert _parsed(b"[1, 2]", ("id",)) == [1, 2]  # not objects: as it is
    with pytest.raises((orjson.JSONDecodeError, msgspec.DecodeError)):  # the client retries
        _parsed(b'[{"id": 1}', ("id",))

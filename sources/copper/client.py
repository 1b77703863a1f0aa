"""CopperClient: every HTTP call to Copper, with auth, the shared budget, retries, clear errors.

Retried (jittered exponential backoff, `Retry-After` honoured): 429, 5xx, timeouts, connection
errors, bodies that are not JSON. Not retried: 400/401/403/404/422, which raise `CopperError`
naming the request and Copper's message. Secrets never reach logs, errors or reprs.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TypedDict

import httpx
import msgspec
import orjson
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from .rate_limit import RequestBudget
from .settings import BASE_URL, REQUESTS_PER_MINUTE

log = logging.getLogger("copper")

HINTS = {
    401: "check sources.copper.api_key and sources.copper.user_email (or access_token)",
    403: "the key's user cannot see this; use a key of a user whose role allows it",
    404: "check sources.copper.base_url",
}


class CopperError(Exception):
    """A Copper request that failed for good; the message says which request and why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CopperAuthError(CopperError):
    """Copper refused the credentials (401/403)."""


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _Unreachable(_Retryable):
    """The host refused or did not resolve: retried only a few times, then reported."""


UNREACHABLE_ATTEMPTS = 3


class Page(list):
    """Records as Copper sent them, with the JSON they came in (`raw`) and which of its
    records they are (`keep`: their positions; None: all): a worker process builds its rows
    from the bytes, which cost nothing to send, rather than from the records.

    A `light` page holds only some keys of each record (`CopperClient.search(keys=...)`):
    what a walk needs to move on, read without making every value a Python object; the
    records themselves are `records()`, from the JSON."""

    __slots__ = ("keep", "light", "raw")

    def __init__(
        self, records: list, raw: bytes, keep: list[int] | None = None, light: bool = False
    ) -> None:
        super().__init__(records)
        self.raw, self.keep, self.light = raw, keep, light

    def subset(self, positions: list[int]) -> Page:
        """These records of the page (positions in this page), still with the page's JSON."""
        keep = positions if self.keep is None else [self.keep[i] for i in positions]
        return Page([self[i] for i in positions], self.raw, keep, self.light)

    def records(self) -> list[dict]:
        """The whole records (parsed from the JSON if this page is light)."""
        if not self.light:
            return list(self)
        records = orjson.loads(self.raw)
        return records if self.keep is None else [records[i] for i in self.keep]


def subset(page: list[dict], positions: list[int]) -> list[dict]:
    """These records of a page (positions in it); a `Page` keeps its JSON along."""
    if len(positions) == len(page):
        return page
    if isinstance(page, Page):
        return page.subset(positions)
    return [page[i] for i in positions]


@dataclass(frozen=True)
class Credentials:
    """An API key and its user's email, or an OAuth access token. Never printed."""

    api_key: str | None = field(default=None, repr=False)
    user_email: str | None = None
    access_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.access_token and not (self.api_key and self.user_email):
            raise ValueError(
                "Copper credentials missing: set sources.copper.api_key and "
                "sources.copper.user_email (env SOURCES__COPPER__API_KEY, "
                "SOURCES__COPPER__USER_EMAIL), or sources.copper.access_token"
            )

    def headers(self) -> dict[str, str]:
        if self.access_token:
            return {"Authorization": f"Bearer {self.access_token}"}
        return {
            "X-PW-AccessToken": self.api_key or "",
            "X-PW-UserEmail": self.user_email or "",
            "X-PW-Application": "developer_api",
        }


@dataclass
class EntityStats:
    """What one entity (or reference table) cost: requests, 429s, records, time."""

    requests: int = 0
    throttled: int = 0
    records: int = 0  # records received (reconciliation listings and checks included)
    extracted: int = 0  # records handed to dlt (set by the extraction)
    started: float | None = None  # monotonic time of the first request
    finished: float | None = None  # ... and of the last response

    @property
    def seconds(self) -> float:
        return (self.finished or 0) - (self.started or 0) if self.started else 0.0


@dataclass
class ClientStats:
    """Counters of a run, per path segment (`people`, `account`...); thread-safe via the client."""

    entities: dict[str, EntityStats] = field(default_factory=dict)
    retries: int = 0
    budget: RequestBudget | None = None  # the run's request budget, for its waits
    built_by_workers: int = 0  # records whose rows worker processes built (`arrow_processes`)
    worker_cpu_seconds: float = 0.0  # ... the CPU seconds those processes used
    worker_peak_rss_mb: float = 0.0  # ... and the largest peak memory of one of them

    @property
    def budget_waits(self) -> tuple[int, float]:
        """(requests that waited for the rate limit, seconds waited in all)."""
        return (self.budget.waits, self.budget.waited_seconds) if self.budget else (0, 0.0)

    def entity(self, name: str) -> EntityStats:
        return self.entities.setdefault(name, EntityStats())

    @property
    def requests(self) -> int:
        return sum(e.requests for e in self.entities.values())

    @property
    def throttled(self) -> int:
        return sum(e.throttled for e in self.entities.values())


class CopperClient:
    """A thread-safe Copper API client; one per run, shared by every resource."""

    def __init__(
        self,
        credentials: Credentials,
        base_url: str = BASE_URL,
        *,
        requests_per_minute: int = REQUESTS_PER_MINUTE,
        rate_window: float = 60.0,
        timeout: float = 30.0,
        max_attempts: int = 8,
        max_backoff: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        budget: RequestBudget | None = None,
        stats: ClientStats | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        per_window = max(1, round(requests_per_minute * rate_window / 60))
        self.budget = budget or RequestBudget(per_window, rate_window)
        self.max_attempts = max_attempts
        self.max_backoff = max_backoff
        self.stats = stats if stats is not None else ClientStats()
        self.stats.budget = self.budget
        self._lock = threading.Lock()
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={**credentials.headers(), "Content-Type": "application/json"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"CopperClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    # -- public calls ------------------------------------------------------------------------
    def search(
        self, entity: str, body: dict, context: str = "", keys: tuple[str, ...] = ()
    ) -> tuple[list[dict], int | None]:
        """One page of POST /{entity}/search: (records, X-PW-TOTAL or None); with `keys`, a
        light `Page` of only those keys of each record."""
        data, headers = self.request("POST", f"/{entity}/search", body, context=context, keys=keys)
        if not isinstance(data, list):
            raise CopperError(
                f"Copper POST /{entity}/search{_ctx(context)} returned {type(data).__name__}, "
                "expected a list of records"
            )
        with self._lock:
            self.stats.entity(entity).records += len(data)
        total = headers.get("x-pw-total")
        return data, int(total) if total and total.isdigit() else None

    def get(self, path: str, params: dict | None = None, context: str = "") -> Any:
        return self.request("GET", path, params=params, context=context)[0]

    def request(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        *,
        params: dict | None = None,
        context: str = "",
        keys: tuple[str, ...] = (),
    ) -> tuple[Any, httpx.Headers]:
        """Send one logical request, retrying transient failures; (parsed JSON, headers). A
        list comes as a `Page` (light, of `keys` only, if keys are given)."""
        label = f"{method} {path}{_ctx(context)}"
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts) | _unreachable_for_long,
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            before_sleep=lambda state: self._before_retry(label, state),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._send(method, path, body, params, label, keys)
        except _Retryable as exc:
            attempts = UNREACHABLE_ATTEMPTS if isinstance(exc, _Unreachable) else self.max_attempts
            raise CopperError(f"Copper {label} failed after {attempts} attempts: {exc}") from None
        raise AssertionError("unreachable")

    # -- internals ---------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        path: str,
        body: dict | None,
        params: dict | None,
        label: str,
        keys: tuple[str, ...] = (),
    ) -> tuple[Any, httpx.Headers]:
        content = orjson.dumps(body) if body is not None else None
        counters = self.stats.entity(path.strip("/").split("/")[0])
        request = self._http.build_request(method, path, content=content, params=params)
        with self.budget.slot() as answered:
            with self._lock:
                counters.requests += 1
                counters.started = counters.started or time.monotonic()
            try:
                response = self._http.send(request, stream=True)
                answered()  # the headers are in: the body's transfer and our wait for it to be
                # read (threads share the GIL) no longer hold a place in the budget
                try:
                    response.read()
                finally:
                    response.close()
            except httpx.TimeoutException as exc:
                raise _Retryable(f"timed out ({type(exc).__name__})") from None
            except httpx.ConnectError as exc:
                raise _Unreachable(f"cannot connect to {self.base_url} ({exc})") from None
            except httpx.TransportError as exc:
                raise _Retryable(f"connection failed ({type(exc).__name__}: {exc})") from None
            finally:
                counters.finished = time.monotonic()
        # read and closed by now; httpx's stream refers back to the response, a cycle that kept
        # each page's body (~200 KB) until the cyclic GC, with pipelines/tuning.py's thresholds
        # often until the run's end: extract RSS grew with the records (582 MB at 500k, 387 now)
        response.stream = _READ
        status = response.status_code
        if status == 429:
            with self._lock:
                counters.throttled += 1
            retry_after = _retry_after(response)
            self.budget.pause(
                retry_after if retry_after is not None else min(2.0, self.max_backoff)
            )
            raise _Retryable("HTTP 429 rate limited", retry_after)
        if status >= 500:
            raise _Retryable(f"HTTP {status} {_message(response)}")
        if status >= 400:
            hint = HINTS.get(status)
            message = f"Copper {label} failed: HTTP {status} {_message(response)}"
            if hint:
                message += f" ({hint})"
            error = CopperAuthError if status in (401, 403) else CopperError
            raise error(message, status)
        try:
            return _parsed(response.content, keys), response.headers
        except (orjson.JSONDecodeError, msgspec.DecodeError):
            raise _Retryable(
                f"HTTP {status} body is not valid JSON ({len(response.content)} bytes)"
            ) from None

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        backoff = wait_exponential_jitter(initial=1, max=self.max_backoff, jitter=1)(state)
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(max(exc.retry_after, 0.0), self.max_backoff * 5)
        return backoff

    def _before_retry(self, label: str, state: RetryCallState) -> None:
        with self._lock:
            self.stats.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0
        log.warning(
            "Copper %s: %s; retry %d/%d in %.1fs",
            label, exc, state.attempt_number, self.max_attempts - 1, delay,
        )  # fmt: skip


def _parsed(content: bytes, keys: tuple[str, ...]) -> Any:
    """A body's JSON; a list as a `Page`, light (only `keys` of each record) if keys are
    given and it is a list of objects."""
    if keys:
        try:
            return Page(_key_decoder(keys).decode(content), content, light=True)
        except msgspec.ValidationError:  # not a list of objects: parsed as it is
            pass
    data = orjson.loads(content)
    return Page(data, content) if data.__class__ is list else data


@functools.cache
def _key_decoder(keys: tuple[str, ...]) -> msgspec.json.Decoder:
    """Decodes a list of objects into dicts of these keys (any value, the others skipped)."""
    only = TypedDict("Keys", dict.fromkeys(keys, Any), total=False)  # type: ignore[misc]
    return msgspec.json.Decoder(list[only])  # type: ignore[valid-type]


def _unreachable_for_long(state: RetryCallState) -> bool:
    exc = state.outcome.exception() if state.outcome else None
    return isinstance(exc, _Unreachable) and state.attempt_number >= UNREACHABLE_ATTEMPTS


_READ = httpx.ByteStream(b"")  # a read response's stream: nothing left to read


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return float(value)
    except ValueError:
        return None


def _message(response: httpx.Response) -> str:
    """Copper's error message from a body, short and free of anything we sent."""
    try:
        body = orjson.loads(response.content)
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])[:300]
    except orjson.JSONDecodeError:
        pass
    return response.reason_phrase or ""


def _ctx(context: str) -> str:
    return f" ({context})" if context else ""

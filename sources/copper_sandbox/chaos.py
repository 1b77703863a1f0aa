"""Everything hostile about a real Copper account: rate limit, latency, faults, concurrent edits
and deletions, lossy webhooks.

All of it is configuration (`SandboxConfig`), changeable at run time from Python or over the
admin HTTP API, and all randomness comes from one seeded generator so a failing run replays.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field, fields

# 500/502/503: a server error; hang: no answer for `hang_seconds`; truncated: a 200 whose JSON
# stops halfway; reset: the connection dropped mid-body; malformed: a 200 whose body is garbled,
# not JSON; 429: refused as rate limited (Retry-After when `retry_after`), whatever the limiter
# says: a storm; 401: refused as unauthenticated, as Copper answers a revoked key; 403: refused
# as forbidden, as Copper answers a user whose role lost access. Script a run of 401s (or set
# `faults={"401": 1.0}` over the admin API) for a key revoked for good.
FAULT_KINDS = (
    "500", "502", "503", "hang", "truncated", "reset", "malformed", "429", "401", "403",
)  # fmt: skip


@dataclass
class SandboxConfig:
    """Knobs of the simulated account. Defaults behave like Copper on a good day."""

    requests_per_window: int = 180  # Copper: 180 requests in any rolling 60 s per account
    window_seconds: float = 60.0
    retry_after: bool = False  # Copper does not promise a Retry-After header on 429
    latency: float = 0.0  # seconds added to each API response
    jitter: float = 0.0  # +- uniform seconds around `latency`
    faults: dict[str, float] = field(default_factory=dict)  # kind -> probability per request
    scripted_faults: dict[int, str] = field(default_factory=dict)  # K-th API request -> kind
    hang_seconds: float = 30.0  # how long a "hang" fault stalls before answering
    chaos_edits: float = 0.0  # expected random record edits before each search request
    chaos_deletes: float = 0.0  # expected random deletions of the searched entity, per search
    total_inflation: float = 0.0  # X-PW-TOTAL may exceed the true count by up to this fraction
    ignored_filters: dict[str, list[str]] = field(default_factory=dict)  # entity -> filters
    webhook_drop_rate: float = 0.05  # share of webhook notifications silently lost
    webhook_batch_seconds: float = 0.5  # changes this close together share one notification
    webhook_timeout: float = 10.0  # seconds a webhook receiver gets to answer
    webhook_ca_file: str | None = None  # PEM CA bundle trusted for https targets (+ system CAs)
    seed: int = 0

    def update(self, **changes: object) -> None:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown sandbox setting(s): {', '.join(sorted(unknown))}")
        for name, value in changes.items():
            if name == "faults":
                bad = set(value) - set(FAULT_KINDS)  # type: ignore[arg-type]
                if bad:
                    raise ValueError(f"unknown fault kind(s) {sorted(bad)}; one of {FAULT_KINDS}")
            if name == "scripted_faults":
                value = {int(k): v for k, v in value.items()}  # type: ignore[union-attr]
            setattr(self, name, value)

    def as_dict(self) -> dict:
        return asdict(self)


class RollingWindowLimiter:
    """N requests in any rolling window; a refused request does not count."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self, limit: int, window: float) -> float | None:
        """Admit a request (None) or return seconds until a slot frees."""
        now = time.monotonic()
        with self._lock:
            while self._times and self._times[0] <= now - window:
                self._times.popleft()
            if limit <= 0 or len(self._times) < limit:
                self._times.append(now)
                return None
            return self._times[0] + window - now

    def reset(self) -> None:
        with self._lock:
            self._times.clear()


class Chaos:
    """Decides, per API request, which fault (if any) and how much latency applies."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.limiter = RollingWindowLimiter()
        self._count = 0
        self._lock = threading.Lock()

    def next_request(self) -> tuple[int, str | None, float]:
        """(the request's ordinal, the fault to inject, the latency to add)."""
        cfg = self.config
        with self._lock:
            self._count += 1
            k = self._count
            fault = cfg.scripted_faults.pop(k, None)
            if fault is None:
                for kind, probability in cfg.faults.items():
                    if self.rng.random() < probability:
                        fault = kind
                        break
            delay = cfg.latency + (self.rng.uniform(-cfg.jitter, cfg.jitter) if cfg.jitter else 0)
        return k, fault, max(0.0, delay)

    def edits_before_search(self) -> int:
        """How many random edits concurrent users make before this search is answered."""
        return self._draw(self.config.chaos_edits)

    def deletes_before_search(self) -> int:
        """How many random records concurrent users delete before this search is answered."""
        return self._draw(self.config.chaos_deletes)

    def _draw(self, rate: float) -> int:
        """An integer with expectation `rate`: its whole part, plus one by chance."""
        if rate <= 0:
            return 0
        with self._lock:
            whole = int(rate)
            return whole + (1 if self.rng.random() < rate - whole else 0)

    def reported_total(self, total: int) -> int:
        """X-PW-TOTAL: an upper bound of the match count, exact unless inflation is set."""
        if self.config.total_inflation <= 0 or total == 0:
            return total
        with self._lock:
            return total + int(total * self.config.total_inflation * self.rng.random())

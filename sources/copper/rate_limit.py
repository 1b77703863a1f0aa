"""One request budget per Copper account: at most N requests in any rolling window.

Copper counts a request when it receives it, somewhere between our send and its response. So a
slot is held from the moment a request is sent until `window` seconds after its response came
back: however the latency varies, Copper never sees more than N of ours in any window, and the
cost is about one round trip per window (a 98% duty cycle at 1 s latency and 60 s windows), not
a fixed safety sleep. Every thread of a run draws on the same budget.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class RequestBudget:
    """Thread-safe "N requests per rolling window", latency-aware."""

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            raise ValueError(f"requests per window must be at least 1, got {limit}")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._done: deque[float] = deque()  # response times of finished requests
        self._in_flight = 0
        self._paused_until = 0.0
        self._cond = threading.Condition()
        self.waits = 0  # times a request had to wait for the budget
        self.waited_seconds = 0.0
        self._waiting = 0  # requests blocked on the budget right now

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one request's place in the budget while it is sent and answered."""
        self._acquire()
        try:
            yield
        finally:
            with self._cond:
                self._in_flight -= 1
                self._done.append(self._clock())
                self._cond.notify_all()

    def has_spare_capacity(self) -> bool:
        """Would one more reader raise the request rate? Not while requests queue for the
        budget, nor while Copper has told us to pause."""
        with self._cond:
            return self._waiting == 0 and self._clock() >= self._paused_until

    def pause(self, seconds: float) -> None:
        """Stop every thread from sending for `seconds` (Copper said 429)."""
        with self._cond:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _acquire(self) -> None:
        waited_since: float | None = None
        with self._cond:
            while True:
                now = self._clock()
                while self._done and self._done[0] <= now - self.window:
                    self._done.popleft()
                if now < self._paused_until:
                    timeout: float | None = self._paused_until - now
                elif self._in_flight + len(self._done) >= self.limit:
                    timeout = self._done[0] + self.window - now if self._done else None
                else:
                    self._in_flight += 1
                    if waited_since is not None:
                        self.waits += 1
                        self.waited_seconds += now - waited_since
                    return
                if waited_since is None:
                    waited_since = now
                self._waiting += 1
                try:
                    self._cond.wait(timeout)
                finally:
                    self._waiting -= 1

"""One request budget per Copper account: at most N requests in any rolling window.

Copper counts a request when it receives it, somewhere between our send and its response. So a
slot is held from the moment a request is sent until `window` seconds after its response came
back: however the latency varies, Copper never sees more than N of ours in any window, and the
cost is about one round trip per window (a 98% duty cycle at 1 s latency and 60 s windows), not
a fixed safety sleep. Every thread of a run draws on the same budget.

The budget also keeps the board of the run's walks (`WalkBoard`): how much is left to read in
all of them, and how long one request cycle of a walk takes, so a walker can tell whether one
more walk would shorten the run (a chain of pages that would outlast the budget) or only cost
a request.
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

PAGE = 200  # rows per page, for turning rows left into requests left
# a walk is split when its chain of pages exceeds the budget's time for all the work left by
# this factor (and two cycles): a split costs about half a request (benchmarks/README.md)
OUTLAST_MARGIN = 1.1
_current = threading.local()  # the priority of the request this thread is about to send


@contextmanager
def request_priority(priority: float | None) -> Iterator[None]:
    """Requests sent by this thread inside the block wait for the budget behind requests of
    higher priority. Walks use the rows they have left, so while the budget is the
    bottleneck the longest chains of pages go first and every walk ends about together,
    instead of the run ending on one long walk with the budget idle. None: first of all."""
    before = getattr(_current, "priority", None)
    _current.priority = priority
    try:
        yield
    finally:
        _current.priority = before


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
        self._queue: list[tuple[float, int]] = []  # heap of (-priority, arrival) of requests
        self._seq = 0
        self._thread = threading.local()  # per thread: when it last sent, for the cycle
        self.cycle: float | None = None  # seconds from one send of a walk to its next, unthrottled
        self.board = WalkBoard(self)

    @property
    def rate(self) -> float:
        """Requests per second the budget allows in the long run."""
        return self.limit / self.window

    @contextmanager
    def slot(self) -> Iterator[Callable[[], None]]:
        """Hold one request's place in the budget while it is sent and answered. The place
        counts for a window from when the answer began, which the caller may say by calling
        what this yields (the response's headers are in: Copper has counted the request by
        then); else from the end of the block."""
        waited = self._acquire()
        sent = self._clock()
        self._note_cycle(sent, waited)
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                with self._cond:
                    self._in_flight -= 1
                    self._done.append(self._clock())
                    self._cond.notify_all()

        try:
            yield release
        finally:
            release()

    def free_slots(self) -> int:
        """Requests that could be sent right now without waiting."""
        with self._cond:
            now = self._clock()
            while self._done and self._done[0] <= now - self.window:
                self._done.popleft()
            return max(0, self.limit - self._in_flight - len(self._done))

    def _note_cycle(self, sent: float, waited: float) -> None:
        """A thread's time from one send to its next, less the wait for the budget: latency
        plus our own work on the page. Gaps far longer than the last estimate (a thread that
        went idle between walks) are not cycles."""
        last = getattr(self._thread, "sent", None)
        self._thread.sent = sent
        if last is None:
            return
        gap = sent - last - waited
        with self._cond:
            if self.cycle is None:
                self.cycle = gap
            elif gap < 4 * self.cycle:
                self.cycle += 0.1 * (gap - self.cycle)

    def pause(self, seconds: float) -> None:
        """Stop every thread from sending for `seconds` (Copper said 429)."""
        with self._cond:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _acquire(self) -> float:
        """Take a slot, waiting behind requests of higher priority; returns the seconds
        waited."""
        waited_since: float | None = None
        priority = getattr(_current, "priority", None)
        with self._cond:
            self._seq += 1
            # highest priority first (None: not a walk, first of all), then first come
            ticket = (-math.inf if priority is None else -priority, self._seq)
            heapq.heappush(self._queue, ticket)
            try:
                while True:
                    now = self._clock()
                    while self._done and self._done[0] <= now - self.window:
                        self._done.popleft()
                    if now < self._paused_until:
                        timeout: float | None = self._paused_until - now
                    elif self._in_flight + len(self._done) >= self.limit:
                        timeout = self._done[0] + self.window - now if self._done else None
                    elif self._queue[0] != ticket:
                        timeout = None  # a request that matters more goes first
                    else:
                        self._in_flight += 1
                        if waited_since is not None:
                            self.waits += 1
                            self.waited_seconds += now - waited_since
                        return 0.0 if waited_since is None else now - waited_since
                    if waited_since is None:
                        waited_since = now
                    self._waiting += 1
                    try:
                        self._cond.wait(timeout)
                    finally:
                        self._waiting -= 1
            finally:
                self._queue.remove(ticket)
                heapq.heapify(self._queue)
                self._cond.notify_all()  # the next in line may go now


class Walk(Protocol):
    remaining: int | None  # rows still to read (an upper bound), or None: unknown


class WalkBoard:
    """The walks of a run, across entities: whether one more walk would shorten the run.

    The run cannot end before its longest chain of pages (each page of a walk waits for the
    one before: a cycle each), nor before the budget has let every remaining request through.
    A walk is worth splitting when its chain would outlast the budget's share of the work
    left: then the split's cost (about one request) buys time. Otherwise walks are left whole,
    so no request is spent on splits that only move the budget's bottleneck around.
    """

    def __init__(self, budget: RequestBudget) -> None:
        self.budget = budget
        self._lock = threading.Lock()
        self._walks: list[Walk] = []
        self._planning = 0  # entities that will plan walks but have not yet
        self._planned = 0  # ... and that have
        self._running = 0  # walks being read right now (queued windows not counted)

    def expect_plan(self) -> None:
        """An entity will plan its walks: until it has, the work left is not known."""
        with self._lock:
            self._planning += 1

    def planned(self) -> None:
        with self._lock:
            if self._planning:
                self._planning -= 1
                self._planned += 1

    def started(self, walk: Walk) -> None:
        with self._lock:
            self._walks.append(walk)

    def finished(self, walk: Walk) -> None:
        with self._lock:
            if walk in self._walks:
                self._walks.remove(walk)

    def running(self, delta: int) -> None:
        """A walk started (+1) or stopped (-1) being read."""
        with self._lock:
            self._running += delta

    def pages_left(self) -> float:
        with self._lock:
            return sum((w.remaining or 0) for w in self._walks) / PAGE

    def would_outlast(self, walk: Walk) -> bool:
        """Would this walk, read to its end, clearly take longer than the budget needs for all
        the requests still to send? Not while an entity is still planning: the work left is
        not known yet, and each planning entity brings a walk of its own. A chain only a
        little longer than the budget's time is left whole (`OUTLAST_MARGIN`): such a split
        buys less time than its request costs. No cycle measured yet: no."""
        cycle = self.budget.cycle
        if cycle is None or walk.remaining is None:
            return False
        with self._lock:
            if self._planning:
                return False
        chain = walk.remaining / PAGE * cycle
        budgeted = max(0.0, self.pages_left() - self.budget.free_slots()) / self.budget.rate
        return chain > budgeted * OUTLAST_MARGIN + 2 * cycle or self.too_few_readers()

    def too_few_readers(self) -> bool:
        """Little's law: keeping the allowed rate takes rate x cycle requests in flight, one
        per walk (half again as many, for jitter and our own work). Fewer walks than that,
        while no request waits for the budget, leave it idle. An entity still planning counts
        as the walk it is about to start."""
        cycle = self.budget.cycle
        if cycle is None:
            return False
        with self._lock:
            readers = self._running + self._planning
        with self.budget._cond:
            waiting = self.budget._waiting
        return waiting == 0 and readers < 1.5 * self.budget.rate * cycle

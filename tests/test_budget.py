"""The request budget as a user relies on it: no 429 once the window is known, whatever the
latency; walks split only when that shortens the run, at a split point inside the data; the
longest walk goes first when requests queue. (A no-change run is one search per entity:
tests/test_source_exactness.py.)"""

from __future__ import annotations

import threading
import time

from copper.rate_limit import RequestBudget, WalkBoard, request_priority
from copper.settings import LATEST
from copper.windows import Stretch, Window
from copper_sandbox import SandboxAccount

from .warehouse import Loader


def test_no_429_once_the_budget_is_known_with_latency_and_jitter(serve, tmp_path):
    """10 requests per rolling second, answers in 50 +- 30 ms: requests in flight across a
    window's edge are where a limiter that counts sends or responses would overshoot."""
    account = SandboxAccount.generate(seed=5, scale=0.3)
    with serve(
        account, requests_per_window=10, window_seconds=1.0, latency=0.05, jitter=0.03, seed=5
    ) as running:
        loader = Loader(tmp_path, running)
        loader.run(requests_per_minute=600, rate_limit_window=1.0, min_split_records=400)
        stats = running.stats()
    assert stats["by_status"].get("429", 0) == 0
    assert stats["requests"] > 3 * 10  # several windows' worth: the limit was in play


def test_an_open_ended_walk_splits_where_its_rows_are_not_in_year_5000():
    """Activities' window ends in 9999 (future-dated ones): the split point comes from the
    walk's density (seconds of walk key per row), so both halves hold rows."""
    start = 1_700_000_000
    walk = Stretch(Window(0, LATEST), lo=0, hi=LATEST, top=LATEST, remaining=10_000)
    walk.advance(start, 10_000, rows=200, first=start - 199 * 60)  # a row a minute
    upper = walk.split(min_records=1_000)
    assert upper is not None and walk.hi is not None
    assert upper.lo == walk.hi + 1 and upper.hi == LATEST
    assert abs(walk.hi - (start + 5_000 * 60)) <= 1  # half the rows left, at a row a minute
    assert walk.remaining == upper.remaining == 5_000
    fresh = Stretch(Window(0, LATEST), lo=0, hi=LATEST, top=LATEST, remaining=10_000)
    assert fresh.split(min_records=1_000) is None  # no page of its own read yet: no density


def test_walks_split_only_when_their_chain_would_outlast_the_budget():
    budget = RequestBudget(limit=180, window=60.0)
    budget.cycle = 1.0  # a page every second per walk, 3 requests per second allowed
    board = WalkBoard(budget)
    short, long = Stretch(Window(0, 1), 0, 1, 1), Stretch(Window(0, 1), 0, 1, 1)
    short.remaining, long.remaining = 100 * 200, 1_000 * 200  # pages: 100 and 1,000
    board.started(short)
    board.started(long)
    board.running(5)  # enough walks in flight for 3 requests/s at 1 s each (Little's law)
    # the budget needs (1,100 - 180 free) / 3 = 307 s for everything left
    assert board.would_outlast(long) and not board.would_outlast(short)
    board.expect_plan()  # an entity still to plan: the work left is not known, no split yet
    assert not board.would_outlast(long)
    board.planned()
    board.finished(long)  # alone, with the budget's free slots covering it: worth splitting
    assert board.would_outlast(short)
    board.started(long)
    board.running(-3)  # 2 walks cannot keep 3 requests/s at 1 s each: split, budget or not
    assert board.too_few_readers() and board.would_outlast(short)


def test_a_chain_only_a_little_longer_than_the_budgets_time_is_left_whole():
    """A split costs about half a request; it pays only when the chain clearly outlasts."""
    budget = RequestBudget(limit=180, window=60.0)
    budget.cycle = 1.0
    board = WalkBoard(budget)
    other, walk = Stretch(Window(0, 1), 0, 1, 1), Stretch(Window(0, 1), 0, 1, 1)
    other.remaining = 780 * 200
    board.started(other)
    board.started(walk)
    board.running(5)
    # the budget needs (780 + pages - 180 free) / 3 s; the walk's chain is its pages x 1 s
    walk.remaining = 310 * 200  # 310 s against 303 s: within the margin
    assert not board.would_outlast(walk)
    walk.remaining = 400 * 200  # 400 s against 333 s: split
    assert board.would_outlast(walk)


def test_readers_still_planning_count_as_walks():
    """At the start entities plan one after another: the first planned is not alone."""
    budget = RequestBudget(limit=180, window=60.0)
    budget.cycle = 1.0
    board = WalkBoard(budget)
    for _ in range(6):  # 3 requests/s at 1 s each want 4.5 walks
        board.expect_plan()
    board.planned()
    board.running(1)  # one walk reading, five entities about to start theirs
    assert not board.too_few_readers()
    for _ in range(5):
        board.planned()  # ... and they found nothing to read
    assert board.too_few_readers()


def test_an_open_ended_walk_with_a_sparse_first_page_splits_before_the_present():
    """An account's first page may hold a row a week: at that density half the rows left
    would lie centuries ahead. The split comes no later than halfway to the run's start."""
    present = 1_800_000_000
    walk = Stretch(Window(0, LATEST), lo=0, hi=LATEST, top=LATEST, present=present,
                   remaining=50_000)  # fmt: skip
    first = 1_000_000_000
    walk.advance(first + 199 * 604_800, 50_000, rows=200, first=first)  # a row a week
    upper = walk.split(min_records=1_000)
    assert upper is not None and walk.hi is not None
    start = first + 199 * 604_800
    assert walk.hi == start + (present - start) // 2
    assert upper.lo == walk.hi + 1 and upper.hi == LATEST and upper.present == present


def test_the_walk_with_the_most_rows_left_goes_first_when_requests_queue():
    budget = RequestBudget(limit=1, window=0.2)
    order: list[str] = []

    def request(name: str, priority: float) -> None:
        with request_priority(priority), budget.slot():
            order.append(name)

    with budget.slot():  # the one slot is taken: the others queue
        threads = [
            threading.Thread(target=request, args=("few rows left", 200)),
            threading.Thread(target=request, args=("many rows left", 50_000)),
        ]
        for thread in threads:
            thread.start()
            time.sleep(0.05)  # both are queued, the short walk first
    for thread in threads:
        thread.join(timeout=5)
    assert order == ["many rows left", "few rows left"]


def test_a_request_holds_its_place_for_a_window_from_when_its_answer_began():
    """Copper counts a request when it arrives, before it answers: reading the body (and
    waiting for the GIL to read it) does not extend the place a request holds."""
    now = [0.0]
    budget = RequestBudget(1, window=10.0, clock=lambda: now[0])
    with budget.slot() as answered:
        now[0] = 1.0
        answered()  # the response's headers are in
        now[0] = 5.0  # its body read
    assert budget.free_slots() == 0
    now[0] = 11.5  # a window after the headers, not yet one after the body
    assert budget.free_slots() == 1
    with budget.slot():  # a caller that never says: from the end of the block
        now[0] = 12.0
    now[0] = 21.5
    assert budget.free_slots() == 0
    now[0] = 22.0
    assert budget.free_slots() == 1

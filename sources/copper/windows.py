"""Plan cursor windows under Copper's 100,000 cap and walk them without skipping a row.

A window is the records whose cursor (`date_modified`) lies in [lo, hi], hi being the run's
start. Offset paging over such a live set skips a row whenever an earlier row changes mid-walk,
so a window is walked by *keyset restarts* instead: every request is page 1 of "walk key >= the
last value seen", and ids already yielded at that boundary value are dropped. The walk key is
`date_created`, which never changes: an unmodified row keeps its place ahead of the walk and is
always reached, a modified row leaves the window (its new stamp is past hi) and is read by the
next run. Bulk edits give thousands of rows one `date_modified` second, but not one creation
second, so restarts re-read almost nothing (activities walk by `activity_date`, their cursor).

When a whole page shares one walk-key value (a bulk import), that second is walked on its own
by the second key, the same way. Only a full page sharing both falls back to offset paging,
which is where Copper's 100,000 wall could bite: a request past it is refused with a clear
error instead of silently reading nothing.

A seamless walk (a first load, whose reconciliation counts every row after it) restarts
past the last value instead, and takes the new X-PW-TOTAL being the old one less the page as
proof that nothing was skipped; on a mismatch it reads that value again and keeps its seams.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pendulum

from .client import subset
from .rate_limit import WalkBoard, request_priority
from .settings import PAGE_SIZE, SEARCH_CAP, Entity

log = logging.getLogger("copper")

Search = Callable[[dict, str], tuple[list[dict], int | None]]  # (body, context) -> rows, total


class WindowError(RuntimeError):
    """A window that cannot be read completely."""


@dataclass(frozen=True)
class Window:
    """Records whose cursor lies in [lo, hi], inclusive Unix seconds."""

    lo: int
    hi: int

    def __str__(self) -> str:
        fmt = "YYYY-MM-DD HH:mm:ss"
        lo = pendulum.from_timestamp(self.lo).format(fmt)
        hi = pendulum.from_timestamp(self.hi).format(fmt)
        return f"{lo}..{hi} UTC"


@dataclass
class PlannedWindow:
    window: Window
    first_page: list[dict]  # page 1 of the window's walk, already fetched by the probe
    total: int | None  # X-PW-TOTAL of the probe (an upper bound)
    body: dict | None = None  # the probe's body, where it is not the walk's (an open top)


@dataclass
class Stretch:
    """The range of the first walk key that one walk covers, shrinkable while it runs.

    An idle worker takes the upper half of the busiest stretch (`split`); the walk notices
    its lowered bound at its next page and stops there, so the halves never overlap. The
    split point is the middle of the key range left, unless that range is far wider than the
    rows left would fill at the density of the walk's last page (walk-key seconds per row):
    an open-ended window (future-dated activities, up to 9999) would be split in year 5000,
    leaving one half empty, so there the split is where half the rows left are expected at
    that density, or halfway to `present` (the run's start, past which only future-dated rows
    lie) if that comes first: one page's density says little of the years after it (an
    account's first page can hold a row a week, its last year a row a minute). A walk that
    has not read a page of its own yet is not split.
    """

    window: Window
    lo: int | None  # first walk key, inclusive bounds (None: unbounded)
    hi: int | None
    top: int  # the highest value the first walk key can take in this window
    present: int | None = None  # past this walk-key value lie only future-dated rows
    first_page: list[dict] | None = None
    first_total: int | None = None  # X-PW-TOTAL that came with `first_page`
    first_body: dict | None = None  # the body that asked for `first_page`, if not the walk's
    cursor: int | None = None  # where the walk has got to
    remaining: int | None = None  # rows still to read, estimated from X-PW-TOTAL
    per_row: float | None = None  # walk-key seconds per row on the walk's last full page
    # rows left per worker in this walk's entity (queued windows included): its priority
    share: Callable[[], float] | None = field(default=None, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def split(self, min_records: int) -> Stretch | None:
        """Give away the upper half of what is left, if enough is left to be worth it."""
        with self.lock:
            start = self.cursor if self.cursor is not None else self.lo
            top = self.top if self.hi is None else self.hi
            if self.remaining is None or self.remaining < min_records or start is None:
                return None
            if top - start < 2 or not self.per_row:
                return None
            half = self.remaining // 2
            if top - start > 4 * self.per_row * self.remaining:
                mid = start + int(self.per_row * half)
                if self.present is not None and self.present > start + 1:
                    mid = min(mid, start + (self.present - start) // 2)
                mid = min(max(mid, start + 1), top - 1)
            else:
                mid = start + (top - start) // 2
            self.hi, self.remaining = mid, self.remaining - half
            return Stretch(self.window, mid + 1, top, self.top, self.present, remaining=half)

    def upper(self) -> int | None:
        with self.lock:
            return self.hi

    def advance(
        self, cursor: int | None, remaining: int | None, rows: int = 0, first: object = None
    ) -> None:
        with self.lock:
            self.cursor = cursor
            if remaining is not None:
                self.remaining = remaining
            if isinstance(first, int) and isinstance(cursor, int) and cursor > first and rows > 1:
                self.per_row = (cursor - first) / (rows - 1)


class WindowWalker:
    """Reads one entity's windows through a `search(body, context)` function."""

    def __init__(
        self,
        entity: Entity,
        search: Search,
        page_size: int = PAGE_SIZE,
        label: str = "window",
        seamless: bool = False,
    ) -> None:
        """`seamless`: restarts skip the last page's final walk-key value, checked by count
        (see `_keyset`); only for a walk whose every row a reconciliation counts after it."""
        self.entity = entity
        self.search = search
        self.page_size = page_size
        self.label = label  # names the walk in errors: "people window ..., page 3"
        self.levels = entity.walk
        self.present: int | None = None  # past this cursor value lie only future-dated rows
        self.seamless = seamless
        self.seams_reread = 0  # seamless restarts whose count did not match
        self._warned_ignored = False

    # -- planning ----------------------------------------------------------------------------
    def probe(self, window: Window, open_top: bool = False) -> PlannedWindow:
        """Page 1 of a window's walk, with X-PW-TOTAL: counts the window and starts its walk.
        `open_top`: the count includes records whose cursor is already past the window."""
        body = self._body(0, None, None, self._bounds(window), 1)
        if open_top:
            del body[f"maximum_{self.entity.cursor_filter}"]
        rows, total = self.search(body, self._context(window, "probe"))
        return PlannedWindow(window, rows, total, body if open_top else None)

    def plan(
        self,
        lo: int,
        hi: int,
        max_records: int,
        split_at: int | None = None,
        open_top: bool = False,
    ) -> list[PlannedWindow]:
        """Bisect [lo, hi] until each window's X-PW-TOTAL is at most `max_records`.

        Each probe is page 1 of its window's walk, so an unsplit window wastes nothing. A
        window that must be split and holds `split_at` is split there first (activities:
        the run's start, past which only future-dated activities lie). `open_top`: the first
        probe counts every record modified since `lo`, also past `hi` (a first load checks
        by it that it read them all: see `copper/extract.py`).
        """
        max_records = min(max_records, SEARCH_CAP - 1)
        self.present = split_at
        root = Window(lo, hi)
        planned, stack = [], [root]
        while stack:
            window = stack.pop()
            probe = self.probe(window, open_top=open_top and window == root)
            rows, total = probe.first_page, probe.total
            fits = total is None or total <= max_records or len(rows) < self.page_size
            if fits or window.lo >= window.hi:
                planned.append(probe)
                continue
            if split_at is not None and window.lo <= split_at < window.hi:
                stack += [Window(split_at + 1, window.hi), Window(window.lo, split_at)]
                continue
            # nothing in the window is older than its first row's walk key (the cursor itself,
            # or date_created, which never exceeds date_modified): no empty halves to probe
            first = rows[0].get(self.levels[0][0])
            lo = max(window.lo, first) if isinstance(first, int) else window.lo
            if lo >= window.hi:
                planned.append(probe)
                continue
            window = Window(lo, window.hi) if lo > window.lo else window
            mid = window.lo + (window.hi - window.lo) // 2
            stack += [Window(mid + 1, window.hi), Window(window.lo, mid)]
        return sorted(planned, key=lambda p: p.window.lo)

    # -- walking -----------------------------------------------------------------------------
    def stretch(self, planned: PlannedWindow) -> Stretch:
        """The whole window as one stretch, starting from the probe's page."""
        window = planned.window
        walks_cursor = self.levels[0][1] == self.entity.cursor_filter
        remaining = None if planned.total is None else planned.total - len(planned.first_page)
        return Stretch(
            window,
            lo=window.lo if walks_cursor else None,
            hi=window.hi if walks_cursor else None,
            top=window.hi,  # created <= modified <= hi: no walk key exceeds the window's end
            present=self.present if walks_cursor else None,
            first_page=planned.first_page,
            first_total=planned.total,
            first_body=planned.body,
            remaining=remaining,
        )

    def walk(self, planned: PlannedWindow | Stretch) -> Iterator[list[dict]]:
        """Every record of a window (or of a stretch of it), each once, as pages."""
        stretch = planned if isinstance(planned, Stretch) else self.stretch(planned)
        first, stretch.first_page = stretch.first_page, None
        bounds = self._bounds(stretch.window)
        yield from self._keyset(
            0, stretch.lo, stretch.hi, bounds, set(), stretch.window, first, stretch,
            stretch.first_total, stretch.first_body,
        )  # fmt: skip

    @staticmethod
    def _priority(stretch: Stretch | None) -> float | None:
        """The longest chain of pages goes first: an entity's rows left per worker."""
        if stretch is None:
            return None
        return stretch.share() if stretch.share is not None else stretch.remaining or 0

    def _bounds(self, window: Window) -> dict:
        stem = self.entity.cursor_filter
        return {f"minimum_{stem}": window.lo, f"maximum_{stem}": window.hi}

    def _keyset(
        self,
        level: int,
        lo: int | None,
        hi: int | None,
        fixed: dict,
        exclude: set[int],
        window: Window,
        first_page: list[dict] | None = None,
        stretch: Stretch | None = None,
        first_total: int | None = None,
        first_body: dict | None = None,
    ) -> Iterator[list[dict]]:
        key, stem = self.levels[level]
        cursor, seen, page_number = lo, set[int](), 1
        # a seamless restart asks for walk key >= last + 1 instead of >= last (re-reading the
        # last value's rows, at least one a page): it holds if the new count is the old one
        # less the page, i.e. no row of the last value followed the page and none left the
        # set; else the seam is read again, as a keyset restart does, and the walk goes on
        # with seams. X-PW-TOTAL is only documented as an upper bound, so the walker is
        # seamless only where the reconciliation counts every row after it (a first load).
        seamless = self.seamless and level == 0
        check: tuple[int, int | None, int, set[int]] | None = None
        while True:
            if stretch is not None:
                hi = stretch.upper()  # an idle worker may have taken our upper half
            if check is not None and check[1] != hi:  # ... so the counts would not compare
                cursor, seen, check = check[2], check[3], None
            body = self._body(level, cursor, hi, fixed, page_number)
            asked_for = body  # what the page was asked with: its rows are checked against it
            if first_page is not None:
                raw, total, first_page = first_page, first_total, None
                asked_for = first_body or body
            else:
                context = self._context(window, f"{key} >= {cursor}, page {page_number}")
                with request_priority(self._priority(stretch)):
                    raw, total = self.search(body, context)
            asked = hi
            if stretch is not None:
                hi = stretch.upper()  # ... possibly while this request was in flight
            if check is not None:
                expect, asked_before, seam, at_seam = check
                check = None
                if total != expect or asked != asked_before:
                    self.seams_reread += 1
                    seamless = False
                    cursor, seen, page_number = seam, at_seam, 1
                    continue
            accept = self._acceptor(asked_for)
            beyond = hi is not None and any((r.get(key) or 0) > hi for r in raw)
            kept = [
                i
                for i, r in enumerate(raw)
                if accept(r)
                and r["id"] not in exclude
                and not (r.get(key) == cursor and r["id"] in seen)
                and not (beyond and r.get(key) > hi)  # type: ignore[operator]
            ]
            fresh = subset(raw, kept)
            # read what we need of the page before handing it on: downstream steps may
            # transform the records in place
            full = len(raw) == self.page_size
            keys = [(r["id"], r.get(key)) for r in raw] if full else []
            if stretch is not None and keys:
                # a total counted up to the bound before a split is not this walk's any more
                left = None if total is None or hi != asked else total - len(raw)
                stretch.advance(keys[-1][1], left, len(raw), keys[0][1])
            if fresh:
                yield fresh
            if not full or beyond or (total is not None and len(raw) >= total):
                return  # a short page, or X-PW-TOTAL (an upper bound) says nothing is left
            last = keys[-1][1]
            if last is None or (cursor is not None and last < cursor):
                # the server ignored our lower bound: only offset paging can move on
                seen |= {i for i, _ in keys}
                page_number = self._next_offset_page(page_number, window, key, cursor)
            elif last != cursor:
                at_last = {i for i, value in keys if value == last}
                if seamless and total is not None:
                    check = (total - len(raw), asked, last, at_last)
                    cursor, seen, page_number = last + 1, set(), 1
                else:
                    cursor, seen, page_number = last, at_last, 1
            elif level + 1 < len(self.levels):
                # a full page inside one value of this key: read that value by the next key
                crowd = {**fixed, f"minimum_{stem}": cursor, f"maximum_{stem}": cursor}
                done = exclude | seen | {i for i, _ in keys}
                log.info("%s %s: %s %s is crowded; reading it by %s", self.entity.name,
                         window, key, cursor, self.levels[level + 1][0])  # fmt: skip
                yield from self._keyset(level + 1, None, None, crowd, done, window)
                upper = fixed.get(f"maximum_{stem}") if hi is None else hi
                if upper is not None and cursor >= upper:
                    return
                cursor, seen, page_number = cursor + 1, set(), 1
            else:
                # every walk key shared by a full page: only offset paging is left
                crowd = {**fixed, f"minimum_{stem}": cursor, f"maximum_{stem}": cursor}
                done = exclude | seen | {i for i, _ in keys}  # this page's rows too
                yield from self._settled_offsets(level, crowd, done, window)
                upper = fixed.get(f"maximum_{stem}") if hi is None else hi
                if upper is not None and cursor >= upper:
                    return
                cursor, seen, page_number = cursor + 1, set(), 1

    def _settled_offsets(
        self, level: int, crowd: dict, exclude: set[int], window: Window
    ) -> Iterator[list[dict]]:
        """Offset-page a crowd until two passes in a row return the same ids.

        A row that leaves the crowd mid-pass shifts the offsets and may hide another row for
        that pass; rows can only leave (new stamps fall past the window), so a pass that
        returns exactly what the previous one did saw every row that is still there.
        """
        key = self.levels[level][0]
        yielded: set[int] = set()
        previous: set[int] | None = None
        while True:
            current: set[int] = set()
            page_number = 1
            while True:
                body = self._body(level, None, None, crowd, page_number)
                shared = ", ".join(f"{k} {v}" for k, v in crowd.items() if k.startswith("min"))
                context = self._context(window, f"crowd {shared}, page {page_number}")
                raw, _ = self.search(body, context)
                accept = self._acceptor(body)
                ids = [r["id"] for r in raw]
                skip = exclude | yielded
                fresh = subset(
                    raw, [i for i, r in enumerate(raw) if accept(r) and r["id"] not in skip]
                )
                yielded |= {r["id"] for r in fresh}
                current.update(ids)
                if fresh:
                    yield fresh
                if len(raw) < self.page_size:
                    break
                page_number = self._next_offset_page(page_number, window, key, shared)
            if current == previous:
                return
            previous = current

    def _next_offset_page(self, page_number: int, window: Window, key: str, value: object) -> int:
        if (page_number + 1) * self.page_size > SEARCH_CAP:
            raise WindowError(
                f"{self.entity.name} {window}: more than {SEARCH_CAP:,} records share "
                f"{key} = {value}; Copper cannot return them all and no filter splits them"
            )
        return page_number + 1

    # -- bodies ------------------------------------------------------------------------------
    def _body(
        self, level: int, lo: int | None, hi: int | None, fixed: dict, page_number: int
    ) -> dict:
        key, stem = self.levels[level]
        body = {
            **self.entity.extra_body,
            **fixed,
            "page_size": self.page_size,
            "page_number": page_number,
            "sort_by": key,
            "sort_direction": "asc",
        }
        low, high = f"minimum_{stem}", f"maximum_{stem}"
        if lo is not None:  # a keyset bound narrows a fixed one, never widens it
            body[low] = max(lo, body[low]) if body.get(low) is not None else lo
        if hi is not None:
            body[high] = min(hi, body[high]) if body.get(high) is not None else hi
        return body

    def _acceptor(self, body: dict) -> Callable[[dict], bool]:
        """Re-check on our side the bounds we asked Copper to apply."""
        bounds = []
        for key, stem in {*self.levels, (self.entity.cursor, self.entity.cursor_filter)}:
            lo, hi = body.get(f"minimum_{stem}"), body.get(f"maximum_{stem}")
            if lo is not None or hi is not None:
                bounds.append((key, lo, hi))

        def accept(record: dict) -> bool:
            for key, lo, hi in bounds:
                value = record.get(key)
                if (
                    value is None
                    or (lo is not None and value < lo)
                    or (hi is not None and value > hi)
                ):
                    self._warn_ignored(key)
                    return False
            return True

        return accept

    def _warn_ignored(self, key: str) -> None:
        if not self._warned_ignored:
            self._warned_ignored = True
            log.warning(
                "%s: Copper returned records outside the requested %s range; "
                "filtering them out on our side",
                self.entity.name,
                key,
            )

    def _context(self, window: Window, detail: str) -> str:
        return f"{self.entity.name} {self.label} {window}, {detail}"


_DONE = object()


def read_windows(
    walker: WindowWalker,
    planned: list[PlannedWindow],
    workers: int,
    board: WalkBoard | None = None,
    min_split: int = 10_000,
) -> Iterator[list[dict]]:
    """Pages of every window, with up to `workers` walks at once.

    Windows are walked side by side; when a worker is idle and the run's `board` says the
    busiest walk would outlast the request budget (its chain of pages is longer than the
    budget needs for everything left), or that the run has too few walks to keep the budget
    busy, the worker takes the upper half of it, if at least `min_split` rows are left (each
    split costs about one extra request). Without a board, walks are never split.
    """
    stretches = [walker.stretch(p) for p in planned]
    active: list[Stretch] = []

    def share() -> float:
        """Rows left per worker, queued windows included: what decides when the entity ends."""
        walks = [*active, *stretches]
        return sum(s.remaining or 0 for s in walks) / max(1, min(workers, len(walks)))

    for stretch in stretches:
        stretch.share = share
        if board is not None:
            board.started(stretch)  # queued windows are work left too
    if workers <= 1:
        for stretch in stretches:
            if board is not None:
                board.running(1)
            try:
                yield from walker.walk(stretch)
            finally:
                if board is not None:
                    board.running(-1)
                    board.finished(stretch)
        return
    pages: queue.Queue = queue.Queue(maxsize=workers * 4)
    stop = threading.Event()

    def run(stretch: Stretch) -> None:
        if board is not None:
            board.running(1)
        try:
            for page in walker.walk(stretch):
                if stop.is_set():
                    return
                pages.put(page)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            pages.put(exc)
        finally:
            if board is not None:
                board.running(-1)
                board.finished(stretch)
            pages.put((_DONE, stretch))

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="copper-walk") as pool:

        def fill() -> None:
            while len(active) < workers:
                if stretches:
                    stretch = stretches.pop(0)
                elif active and board is not None:
                    busiest = max(active, key=lambda a: a.remaining or 0)
                    if not board.would_outlast(busiest):
                        return
                    stretch = busiest.split(min_split)
                    if stretch is None:
                        return
                    board.started(stretch)
                    stretch.share = share
                    log.info("%s %s: splitting a walk to use idle capacity",
                             walker.entity.name, stretch.window)  # fmt: skip
                else:
                    return
                active.append(stretch)
                pool.submit(run, stretch)

        fill()
        try:
            while active:
                item = pages.get()
                if isinstance(item, tuple) and item and item[0] is _DONE:
                    active.remove(item[1])
                    fill()
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
                    fill()  # the work left changes with every page: a split may now pay
        finally:
            stop.set()
            for stretch in stretches if board is not None else ():
                board.finished(stretch)  # never started: no longer work left
            while active:  # let blocked producers finish
                item = pages.get()
                if isinstance(item, tuple) and item and item[0] is _DONE:
                    active.remove(item[1])

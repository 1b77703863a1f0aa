"""Find what Copper deleted (and what the warehouse lacks) by counting, not re-listing.

Copper's search never lists a deleted record, but it counts: the `X-PW-TOTAL` of a search over a
range of an immutable key (`date_created`; activities: `activity_date`) is an upper bound of the
records in that range. Where that count differs from the rows we expect (the warehouse's live
rows and this run's extracted rows), the range is bisected at the median of the expected keys,
so each half holds as many expected rows; ranges small enough, or dense with differences, are
listed (walked like a cursor window, so rows changing meanwhile are not skipped) and compared
id by id. Every probe is page 1 of its range's listing, so a small range costs one request.

A count that matches while a deletion and a missing record cancel out hides both; the
missing record is read by the next incremental run, and the full sweep (`full=True`: list
every range) catches the deletion. Ids are declared deleted only when absent from every
listing of this reconciliation, so an activity whose date moved is never mistaken for gone.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from array import array
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace

import numpy as np

from .settings import PAGE_SIZE, Entity
from .windows import PlannedWindow, Search, Window, WindowWalker

log = logging.getLogger("copper")

LIST_PAGES = 3  # a differing range of at most this many pages is listed, not bisected
LIST_CHUNK = 12  # pages one listing task walks; larger listings are cut into such chunks


@dataclass(frozen=True)
class KnownRows:
    """Rows of one entity as (id, key, date_modified) int64 arrays, sorted by key."""

    ids: np.ndarray
    keys: np.ndarray
    modified: np.ndarray

    @classmethod
    def of(cls, ids: Iterable[int], keys: Iterable[int], modified: Iterable[int]) -> KnownRows:
        i, k, m = (np.asarray(list(v) if not isinstance(v, np.ndarray | array) else v,
                              dtype=np.int64) for v in (ids, keys, modified))  # fmt: skip
        order = np.argsort(k, kind="stable")
        return cls(i[order], k[order], m[order])

    @classmethod
    def empty(cls) -> KnownRows:
        return cls.of((), (), ())

    def __len__(self) -> int:
        return len(self.ids)

    def updated_by(self, newer: KnownRows) -> KnownRows:
        """These rows with `newer`'s rows added or replacing ours of the same id."""
        if not len(newer):
            return self
        keep = ~np.isin(self.ids, newer.ids)
        ids, index = np.unique(newer.ids[::-1], return_index=True)  # last of newer wins
        last = len(newer) - 1 - index
        return KnownRows.of(
            np.concatenate([self.ids[keep], ids]),
            np.concatenate([self.keys[keep], newer.keys[last]]),
            np.concatenate([self.modified[keep], newer.modified[last]]),
        )

    def modified_of(self, ids: Iterable[int]) -> dict[int, int]:
        """id -> date_modified of those of `ids` these rows hold."""
        mask = np.isin(self.ids, np.fromiter(ids, dtype=np.int64))
        return dict(zip(self.ids[mask].tolist(), self.modified[mask].tolist(), strict=True))

    def without(self, ids: Iterable[int]) -> KnownRows:
        return self.where(~np.isin(self.ids, np.fromiter(ids, dtype=np.int64)))

    def where(self, mask: np.ndarray) -> KnownRows:
        return KnownRows(self.ids[mask], self.keys[mask], self.modified[mask])

    def between(self, lo: int, hi: int) -> KnownRows:
        start = int(np.searchsorted(self.keys, lo, side="left"))
        stop = int(np.searchsorted(self.keys, hi, side="right"))
        return KnownRows(self.ids[start:stop], self.keys[start:stop], self.modified[start:stop])


class RowLog:
    """(id, key, date_modified) of records as they stream past; compact (int64 arrays)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.ids, self.keys, self.modified = array("q"), array("q"), array("q")

    def add(self, records: Iterable[dict]) -> None:
        for record in records:
            key, modified = record.get(self.key), record.get("date_modified")
            self.ids.append(record["id"])
            self.keys.append(key if isinstance(key, int) else -1)
            self.modified.append(modified if isinstance(modified, int) else -1)

    def rows(self) -> KnownRows:
        return KnownRows.of(self.ids, self.keys, self.modified)

    def distinct(self) -> int:
        """How many different records went past."""
        return len(np.unique(np.frombuffer(self.ids, dtype=np.int64)))


@dataclass
class Outcome:
    deleted: list[int] = field(default_factory=list)  # expected ids Copper no longer has
    changed: list[dict] = field(default_factory=list)  # records missing or stale here
    listed: int = 0  # records listed to compare


class Reconciler:
    """Compare one entity's records in Copper with the rows expected, range by range."""

    def __init__(
        self,
        entity: Entity,
        search: Search,
        expected: KnownRows,
        hi: int,
        workers: int = 4,
        page_size: int = PAGE_SIZE,
        lo: int = 0,
        min_modified: int = 0,
    ) -> None:
        key, stem = entity.reconcile_key
        body = dict(entity.extra_body)
        if min_modified and key != entity.cursor:  # a first load from start_date has no more
            body["minimum_modified_date"] = min_modified
            expected = expected.where(expected.modified >= min_modified)
        levels = entity.walk if entity.walk[0] == entity.reconcile_key else (
            entity.reconcile_key, *[lv for lv in entity.walk if lv != entity.reconcile_key]
        )  # fmt: skip
        self.walker = WindowWalker(
            replace(entity, cursor=key, cursor_filter=stem, walk=tuple(levels), extra_body=body),
            search,
            page_size,
            label="reconcile",
        )
        self.entity, self.key, self.expected, self.lo, self.hi = entity, key, expected, lo, hi
        self.workers, self.page_size = max(1, workers), page_size
        self._lock = threading.Lock()
        self._outcome = Outcome()
        self._absent: set[int] = set()
        self._seen: set[int] = set()

    def run(self, full: bool = False) -> Outcome:
        """Every difference between Copper and the expected rows over keys [lo, hi]."""
        root = Window(self.lo, self.hi)
        self.expected = self.expected.between(self.lo, self.hi)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="copper-reconcile") as pool:
            pending: set[Future] = {pool.submit(self._examine, root, full)}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    for window, listing in future.result():
                        pending.add(pool.submit(self._examine, window, listing))
        self._outcome.deleted = sorted(self._absent - self._seen)
        return self._outcome

    # -- one range ---------------------------------------------------------------------------
    def _examine(self, window: Window, listing: bool) -> list[tuple[Window, bool]]:
        """Probe a range; settle it, or return the sub-ranges to examine (and whether to list
        them outright rather than count)."""
        expected = self.expected.between(window.lo, window.hi)
        planned = self.walker.probe(window)
        rows, total = planned.first_page, planned.total
        complete = len(rows) < self.page_size
        if complete or (not listing and total is not None and total == len(expected)):
            if complete:
                self._compare(expected, rows)
            return []
        differ = abs(len(expected) - (total if total is not None else 0))
        pages = math.ceil(max(len(expected), total or 0) / self.page_size)
        listing = listing or total is None or pages <= max(LIST_PAGES, 3 * differ)
        if (listing and pages <= LIST_CHUNK) or window.lo >= window.hi:
            self._compare(expected, self._list(planned))
            return []
        parts = math.ceil(pages / LIST_CHUNK) if listing else 2
        return [(part, listing) for part in _split(window, expected.keys, parts)]

    def _list(self, planned: PlannedWindow) -> list[dict]:
        return [record for page in self.walker.walk(planned) for record in page]

    def _compare(self, expected: KnownRows, listed: list[dict]) -> None:
        known = dict(zip(expected.ids.tolist(), expected.modified.tolist(), strict=True))
        changed = [r for r in listed if known.get(r["id"]) != r.get("date_modified")]
        ids = {r["id"] for r in listed}
        with self._lock:
            self._seen |= ids
            self._absent |= known.keys() - ids
            self._outcome.changed += changed
            self._outcome.listed += len(listed)


def _split(window: Window, keys: np.ndarray, parts: int) -> list[Window]:
    """`window` cut into up to `parts` ranges holding about as many of `keys` each."""
    cuts = sorted({int(keys[len(keys) * i // parts]) for i in range(1, parts)} if len(keys)
                  else set())  # fmt: skip
    cuts = [c for c in cuts if window.lo < c <= window.hi]
    if not cuts:  # nothing expected here (Copper has records we lack): halve the range
        cuts = [window.lo + (window.hi - window.lo) // 2 + 1]
    bounds = [window.lo, *cuts, window.hi + 1]
    return [Window(a, b - 1) for a, b in itertools.pairwise(bounds) if a <= b - 1]

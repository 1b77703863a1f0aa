"""One entity's extraction in a run: the incremental walk, webhook hints, reconciliation.

    cursor windows -> pages of changed records            (the cursor moves only at the end)
    webhook ids    -> those records re-read; absent ones deleted
    reconciliation -> records missing or stale here; deleted ones

Deletions leave as rows of the `_copper_deletions` log and, with hard deletes, as marker rows
that dlt's `hard_delete` hint turns into deletes. The cursor is saved in the resource state
only after every page was handed over, so it never passes data that did not land.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dlt
from dlt.sources import DltResource

from .client import CopperClient, CopperError, Page, subset
from .reconcile import KnownRows, Reconciler, RowLog
from .settings import LATEST, PAGE_SIZE, Entity
from .warehouse import DELETED_AT, DELETION_COLUMNS, DELETIONS
from .windows import WindowWalker, read_windows

log = logging.getLogger("copper")
PROGRESS_EVERY = 10.0  # seconds between progress lines of one entity
DELETES = ("soft", "hard")
RECONCILE = ("counts", "full", "off")
# reconciling costs one count per entity when nothing was deleted: 7 requests, a third of a
# no-change run's 20, so by default it runs twice a day (benchmarks/README.md has the figures)
RECONCILE_EVERY_HOURS = 12.0


@dataclass(frozen=True)
class RunSettings:
    """What every entity of one run shares."""

    initial: int  # start_date: nothing modified before it on a first load
    run_start: int  # the run's "as of": windows end here
    max_window_records: int
    window_workers: int
    min_split_records: int
    deletes: str = "soft"  # soft: `_copper_deleted_at` set; hard: rows deleted
    reconcile: str = "counts"  # counts | full (every id re-listed) | off
    reconcile_every_hours: float = RECONCILE_EVERY_HOURS  # 0: every run


class EntityExtraction:
    """Pages for one entity's dlt resource; `state` is its resource state."""

    def __init__(
        self,
        entity: Entity,
        client: CopperClient,
        settings: RunSettings,
        *,
        lookback_days: int,
        expected: KnownRows,
        webhook_ids: Iterable[int] = (),
        light_pages: bool = False,
    ) -> None:
        """`light_pages`: the walk reads only the keys it needs of each record (light `Page`s,
        whose records are built from their JSON downstream, by `copper/arrow_processes.py`)."""
        self.entity, self.client, self.settings = entity, client, settings
        self.lookback = lookback_days * 86_400
        self.expected = expected
        self.webhook_ids = sorted(set(webhook_ids))
        walk_keys = ("id", "date_modified", entity.cursor, entity.reconcile_key[0],
                     *(key for key, _ in entity.walk))  # fmt: skip
        self.light_keys = tuple(dict.fromkeys(walk_keys)) if light_pages else ()
        # until it has planned, the run counts this entity in the work left (no request here)
        client.budget.board.expect_plan()
        self._planned = False

    def _done_planning(self) -> None:
        if not self._planned:
            self._planned = True
            self.client.budget.board.planned()

    def search(self, body: dict, context: str) -> tuple[list[dict], int | None]:
        return self.client.search(self.entity.name, body, context)

    def walk_search(self, body: dict, context: str) -> tuple[list[dict], int | None]:
        """The incremental walk's searches: light pages, if asked for."""
        return self.client.search(self.entity.name, body, context, keys=self.light_keys)

    def pages(self, state: MutableMapping[str, Any]) -> Iterator[Any]:
        cursor = saved_cursor(state, self.entity)
        seen = RowLog(self.entity.reconcile_key[0])
        # a first load's walk may restart without seams: the reconciliation after it counts
        # every row (none is in the warehouse yet to hide a row the walk missed)
        checked = cursor is None and not len(self.expected) and self._reconcile_due(state)
        # ... and is complete if it read as many records as its first probe counted modified
        # since the start, also past the run's start (see `_read_all`): no reconciliation then
        first_count, counted = None, None
        if self.lookback and cursor is not None and not self._due(state, "lookback_read_at"):
            counted = yield from self._lookback_by_count(cursor, seen)
        if counted is not None:
            newest = counted or None
        else:
            newest, first_count = yield from self._walk(cursor, seen, seamless=checked)
            if self.lookback:
                state["lookback_read_at"] = self.settings.run_start
        known = self.expected.updated_by(seen.rows())
        if self.webhook_ids:
            known = yield from self._apply_webhooks(known)
        if self.settings.reconcile_every_hours > 0 and self._read_all(seen, first_count):
            # deletions during it wait for the next reconciliation (0 hours: this run's)
            state["reconciled_at"] = self.settings.run_start
        elif self._reconcile_due(state):  # on a first load too: rows edited while it ran
            yield from self._reconcile(known)
            state["reconciled_at"] = self.settings.run_start
        # the log exists even before the first deletion, for the reports built on it
        yield dlt.mark.with_table_name(dlt.mark.materialize_table_schema(), DELETIONS)
        if newest is not None and (cursor is None or newest > cursor):
            state["cursor"] = newest

    # -- the incremental walk ----------------------------------------------------------------
    def _walk(
        self, cursor: int | None, seen: RowLog, seamless: bool = False
    ) -> Iterator[list[dict]]:
        """Records changed since the cursor; returns the newest cursor value read, and the
        first probe's count if it took in the whole walk (`open_top`: a first load)."""
        s, entity = self.settings, self.entity
        lo = s.initial if cursor is None else max(s.initial, cursor - self.lookback)
        # future-dated records (activities) are read too, but never move the cursor past
        # the run's start: an activity logged later with an earlier date is still found
        hi = LATEST if entity.future_dated else s.run_start
        board = self.client.budget.board
        if lo > hi:
            self._done_planning()
            return None, None
        walker = WindowWalker(entity, self.walk_search, seamless=seamless)
        split_at = s.run_start if entity.future_dated else None
        open_top = seamless and s.reconcile == "counts" and not entity.future_dated
        try:
            planned = walker.plan(lo, hi, s.max_window_records, split_at, open_top)
        finally:
            self._done_planning()
        whole = len(planned) == 1 and planned[0].body is not None  # the open probe's window
        first_count = planned[0].total if whole else None
        log.info("%s: %d window(s) from %s", entity.name, len(planned), planned[0].window)
        newest, count, last_report = 0, 0, time.monotonic()
        pages = read_windows(walker, planned, s.window_workers, board, s.min_split_records)
        for page in pages:
            if self.light_keys and not isinstance(page, Page):  # its records would be lost
                raise TypeError(f"{entity.name}: a walk gave records without their JSON")
            seen.add(page)
            newest = max(newest, self._newest(page))
            count += len(page)
            yield self._prepared(page)
            if time.monotonic() - last_report > PROGRESS_EVERY:
                last_report = time.monotonic()
                log.info("%s: %s records so far", entity.name, f"{count:,}")
        log.info("%s: %s records read", entity.name, f"{count:,}")
        if walker.seams_reread:
            log.info("%s: %d seam(s) read again (counts changed mid-walk)", entity.name,
                     walker.seams_reread)  # fmt: skip
        return newest or None, first_count

    def _newest(self, records: list[dict]) -> int:
        """The highest cursor value of these records up to the run's start (0: none): the
        future (future-dated activities) never moves the cursor."""
        key, start = self.entity.cursor, self.settings.run_start
        return max((v for r in records if isinstance(v := r.get(key), int) and v <= start),
                   default=0)  # fmt: skip

    def _read_all(self, seen: RowLog, first_count: int | None) -> bool:
        """Did a first load read every record its first probe counted? That count (an upper
        bound) took in the records modified since the start, also those modified after the
        run's start, which the walk does not read: so no record could leave it mid-run, and
        none could join it (a record that changes is stamped past the run's start, and one
        created after the probe too). Every record read was counted; as many read as counted
        means every record counted was read: none edited before the walk reached it, none
        skipped by a seam. Records deleted after they were read are found by the next
        reconciliation, as in any run."""
        if first_count is None:
            return False
        read = seen.distinct()
        if read != first_count:
            log.info("%s: read %s of the %s records first counted: reconciling",
                     self.entity.name, f"{read:,}", f"{first_count:,}")  # fmt: skip
            return False
        log.info("%s: read all %s records first counted: no reconciliation needed",
                 self.entity.name, f"{read:,}")  # fmt: skip
        return True

    # -- the lookback, by count ------------------------------------------------------------------
    def _lookback_by_count(self, cursor: int, seen: RowLog) -> Iterator[Any]:
        """One search, newest first, over the lookback and everything after it: if X-PW-TOTAL
        is the warehouse's rows there plus the new ones on the page, nothing was added
        (backdated) that the page lacks. Returns the newest cursor value read (0: none), or
        None when the count differs and the range must be walked."""
        entity, s = self.entity, self.settings
        lo = max(s.initial, cursor - self.lookback)
        stem = entity.cursor_filter
        body = {**entity.extra_body, f"minimum_{stem}": lo, f"maximum_{stem}": LATEST,
                "page_size": PAGE_SIZE, "page_number": 1, "sort_by": entity.cursor,
                "sort_direction": "desc"}  # fmt: skip
        page, total = self.walk_search(body, f"lookback count from {lo}")
        known = self.expected.between(lo, LATEST)
        modified = dict(zip(known.ids.tolist(), known.modified.tolist(), strict=True))
        expected = len(modified.keys() | {r["id"] for r in page})
        if total is None or total != expected:
            log.info("%s: the lookback's count differs (%s, %d known); walking it",
                     entity.name, total, expected)  # fmt: skip
            return None
        fresh = [i for i, r in enumerate(page) if modified.get(r["id"]) != r.get("date_modified")]
        changed = subset(page, fresh)
        if changed:
            seen.add(changed)
            yield self._prepared(changed)
        log.info("%s: the lookback counts as the warehouse; %d new or changed", entity.name,
                 len(changed))  # fmt: skip
        return self._newest(changed)

    def _prepared(self, records: list[dict]) -> list[dict]:
        self.client.stats.entity(self.entity.name).extracted += len(records)
        return records  # custom fields are pivoted where the records are built into rows

    # -- webhooks ------------------------------------------------------------------------------
    def _apply_webhooks(self, known: KnownRows) -> Iterator[Any]:
        """Re-read the ids webhooks named: present ones are upserted, absent ones deleted."""
        found = self._fetch_ids(self.webhook_ids)
        if found is None:
            return known
        present = {r["id"] for r in found}
        live = known.modified_of(self.webhook_ids)
        changed = [r for r in found if live.get(r["id"]) != r.get("date_modified")]
        deleted = [i for i in self.webhook_ids if i not in present and i in live]
        log.info("%s: webhooks named %d id(s): %d changed, %d deleted", self.entity.name,
                 len(self.webhook_ids), len(changed), len(deleted))  # fmt: skip
        if changed:
            yield self._prepared(changed)
        yield from self._deleted(deleted, live, "webhook")
        log_rows = RowLog(self.entity.reconcile_key[0])
        log_rows.add(changed)
        return known.without(deleted).updated_by(log_rows.rows())

    def _fetch_ids(self, ids: list[int]) -> list[dict] | None:
        """The records of `ids` that exist. Copper documents an `ids` search filter for every
        entity but activities, which are read one by one (404: gone)."""
        entity, found = self.entity, []
        if entity.name == "activities":
            for record_id in ids:
                try:
                    found.append(self.client.get(f"/activities/{record_id}",
                                                 context="webhook check"))  # fmt: skip
                except CopperError as exc:
                    if exc.status != 404:
                        raise
            return found
        for start in range(0, len(ids), PAGE_SIZE):
            chunk = ids[start : start + PAGE_SIZE]
            body = {**entity.extra_body, "ids": chunk, "page_size": PAGE_SIZE, "page_number": 1}
            rows, _ = self.search(body, f"webhook ids {chunk[0]}..{chunk[-1]}")
            if not {r["id"] for r in rows} <= set(chunk):
                log.warning("%s: Copper ignored the ids filter; webhook events left to the "
                            "reconciliation", entity.name)  # fmt: skip
                return None
            found += rows
        return found

    # -- reconciliation ------------------------------------------------------------------------
    def _reconcile_due(self, state: MutableMapping[str, Any]) -> bool:
        s = self.settings
        if s.reconcile == "off":
            return False
        return s.reconcile == "full" or self._due(state, "reconciled_at")

    def _due(self, state: MutableMapping[str, Any], stamp: str) -> bool:
        """Is what `state[stamp]` last did due again, every `reconcile_every_hours` (the
        reconciliation; activities' lookback re-read whole, since its edits change no count)?
        90% of the interval: a daily cron with a 24 h interval does it every day, even when a
        run starts a few seconds earlier than the one before."""
        last, s = state.get(stamp), self.settings
        interval = s.reconcile_every_hours * 3600 * 0.9
        return not isinstance(last, int) or s.run_start - last >= interval

    def _reconcile(self, known: KnownRows) -> Iterator[Any]:
        s, entity = self.settings, self.entity
        future = entity.reconcile_key[0] == entity.cursor and entity.future_dated
        reconciler = Reconciler(
            entity,
            self.search,
            known,
            hi=LATEST if future else s.run_start,
            workers=s.window_workers,
            lo=s.initial if entity.reconcile_key[0] == entity.cursor else 0,
            min_modified=s.initial,
        )
        started = time.monotonic()
        outcome = reconciler.run(full=s.reconcile == "full")
        log.info("%s: reconciled in %.1fs: %s listed, %d missing or stale, %d deleted",
                 entity.name, time.monotonic() - started, f"{outcome.listed:,}",
                 len(outcome.changed), len(outcome.deleted))  # fmt: skip
        if outcome.changed:
            yield self._prepared(outcome.changed)
        live = known.modified_of(outcome.deleted)
        yield from self._deleted(outcome.deleted, live, "full sweep" if s.reconcile == "full"
                                 else "reconciliation")  # fmt: skip

    # -- deletions -----------------------------------------------------------------------------
    def _deleted(self, ids: list[int], modified: dict[int, int], how: str) -> Iterator[Any]:
        if not ids:
            return
        now = datetime.now(UTC)
        rows = [{"entity": self.entity.name, "id": i, "detected_at": now, "detected_by": how}
                for i in ids]  # fmt: skip
        yield dlt.mark.with_table_name(rows, DELETIONS)
        if self.settings.deletes == "hard":
            # a marker outranks any copy of the record in this load (dedup_sort on
            # date_modified, descending), then dlt deletes the row and its child rows
            stamp = int(now.timestamp())
            yield [{"id": i, "date_modified": max(stamp, modified.get(i, 0) + 1), DELETED_AT: now}
                   for i in ids]  # fmt: skip


def with_deletions_table(resource: DltResource) -> DltResource:
    """Give an entity resource the `_copper_deletions` table: a variant with hints of its own
    (append, no key, four columns), not a copy of the entity's."""
    hints = {"table_name": DELETIONS, "create_table_variant": True}
    resource.apply_hints(columns={}, write_disposition="append", primary_key=[], merge_key=[],
                         **hints)  # type: ignore[arg-type]  # fmt: skip
    resource.apply_hints(columns=DELETION_COLUMNS, **hints)  # type: ignore[arg-type]
    return resource


def saved_cursor(state: MutableMapping[str, Any], entity: Entity) -> int | None:
    """The cursor of earlier runs: ours, or where dlt's incremental (used before) left it."""
    if isinstance(state.get("cursor"), int):
        return state["cursor"]
    legacy = state.get("incremental", {}).get(entity.cursor, {}).get("last_value")
    return int(legacy) if isinstance(legacy, int | float) else None

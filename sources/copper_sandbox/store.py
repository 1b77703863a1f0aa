"""Records of one entity, indexed by their sort keys, and Copper's search semantics.

A search is answered from sorted indexes, never by scanning the table: the range filter on the
sort key is two bisections, a page is a slice. Filters on other fields scan only the narrowest
indexed range and the matching ids are cached until the table changes, so walking the pages of
one query costs one scan.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sortedcontainers import SortedList

SEARCH_CAP = 100_000  # Copper returns only the first 100,000 matches of one search
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 20

NONE_KEY = -(2**62)  # where records whose sort value is null sort (first, ascending)
_CACHE_SIZE = 32


class SearchError(ValueError):
    """A search body Copper would reject (HTTP 422)."""


@dataclass(frozen=True)
class EntitySpec:
    """What one searchable entity supports."""

    name: str
    sort_keys: tuple[str, ...]
    default_sort: str
    range_filters: dict[str, str]  # "minimum_created_date" -> ("date_created"), both bounds
    hidden_unless: str | None = None  # body flag that reveals hidden records (converted leads)


def _ranges(**fields: str) -> dict[str, str]:
    out = {}
    for stem, record_field in fields.items():
        out[f"minimum_{stem}"] = record_field
        out[f"maximum_{stem}"] = record_field
    return out


_COMMON_RANGES = _ranges(modified_date="date_modified", created_date="date_created")
_COMMON_SORTS = ("date_modified", "date_created", "name")

SPECS: dict[str, EntitySpec] = {
    "people": EntitySpec("people", _COMMON_SORTS, "name", _COMMON_RANGES),
    "companies": EntitySpec("companies", _COMMON_SORTS, "date_modified", _COMMON_RANGES),
    "leads": EntitySpec(
        "leads", _COMMON_SORTS, "name", _COMMON_RANGES, hidden_unless="include_converted_leads"
    ),
    "opportunities": EntitySpec("opportunities", _COMMON_SORTS, "name", _COMMON_RANGES),
    "projects": EntitySpec("projects", _COMMON_SORTS, "name", _COMMON_RANGES),
    "tasks": EntitySpec(
        "tasks",
        (*_COMMON_SORTS, "due_date"),
        "due_date",
        {**_COMMON_RANGES, **_ranges(due_date="due_date")},
    ),
    "activities": EntitySpec(
        "activities",
        ("activity_date", "date_modified", "date_created"),
        "activity_date",
        {**_COMMON_RANGES, **_ranges(activity_date="activity_date")},
    ),
}
SORT_ALIASES = {"first_name": "name", "last_name": "name", "full_name": "name"}


def tie_order(record_id: int) -> int:
    """Stable position of a record among equal sort keys: deliberately not by id."""
    return (record_id * 0x9E3779B1 + 0x7F4A7C15) & 0xFFFFFFFF


def sort_value(record: dict, key: str) -> Any:
    value = record.get(key)
    if key == "name":
        return (value or "").lower()
    return NONE_KEY if value is None else value


@dataclass
class Query:
    """A parsed, validated search body."""

    sort_by: str
    descending: bool
    page_number: int
    page_size: int
    ranges: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    ids: frozenset[int] | None = None
    include_hidden: bool = False
    predicates: tuple[tuple[str, Any], ...] = ()  # hashable residual filters


def _int_field(body: dict, name: str, default: int) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise SearchError(f"{name} must be an integer, got {value!r}")
    return int(value)


def parse_query(spec: EntitySpec, body: dict, ignored_filters: Iterable[str] = ()) -> Query:
    """Validate a search body the way Copper does; unknown fields are ignored."""
    if not isinstance(body, dict):
        raise SearchError("request body must be a JSON object")
    page_size = _int_field(body, "page_size", DEFAULT_PAGE_SIZE)
    if page_size < 1 or page_size > MAX_PAGE_SIZE:
        raise SearchError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    page_number = _int_field(body, "page_number", 1)
    if page_number < 1:
        raise SearchError(f"page_number must be 1 or greater, got {page_number}")
    sort_by = body.get("sort_by") or spec.default_sort
    sort_by = SORT_ALIASES.get(sort_by, sort_by)
    if sort_by not in spec.sort_keys:
        raise SearchError(f"Invalid sort_by {body.get('sort_by')!r} for {spec.name}")
    direction = (body.get("sort_direction") or "asc").lower()
    if direction not in ("asc", "desc"):
        raise SearchError(f"sort_direction must be 'asc' or 'desc', got {direction!r}")

    ignored = set(ignored_filters)
    ranges: dict[str, tuple[int | None, int | None]] = {}
    for name, record_field in spec.range_filters.items():
        if name in ignored or body.get(name) is None:
            continue
        bound = _int_field(body, name, 0)
        lo, hi = ranges.get(record_field, (None, None))
        ranges[record_field] = (bound, hi) if name.startswith("minimum_") else (lo, bound)

    ids = None
    if body.get("ids") is not None and "ids" not in ignored:
        if not isinstance(body["ids"], list):
            raise SearchError("ids must be an array of integers")
        ids = frozenset(int(i) for i in body["ids"])

    predicates: list[tuple[str, Any]] = []
    if body.get("assignee_ids") is not None:
        predicates.append(("assignee_id", tuple(sorted(body["assignee_ids"]))))
    if spec.name == "activities":
        parent = body.get("parent")
        if parent:
            predicates.append(("parent", (parent.get("type"), int(parent.get("id")))))
        types = body.get("activity_types")
        if types:
            predicates.append(
                ("type", tuple(sorted((t.get("category"), int(t.get("id"))) for t in types)))
            )
    include_hidden = bool(spec.hidden_unless and body.get(spec.hidden_unless))
    return Query(
        sort_by=sort_by,
        descending=direction == "desc",
        page_number=page_number,
        page_size=page_size,
        ranges=ranges,
        ids=ids,
        include_hidden=include_hidden,
        predicates=tuple(predicates),
    )


def _predicate(name: str, wanted: Any) -> Callable[[dict], bool]:
    if name == "assignee_id":
        allowed = set(wanted)
        none_wanted = -2 in allowed
        return lambda r: (
            r.get("assignee_id") in allowed or (none_wanted and r.get("assignee_id") is None)
        )
    if name == "parent":
        ptype, pid = wanted
        return lambda r: (r.get("parent") or {}).get("id") == pid and r["parent"]["type"] == ptype
    if name == "type":
        allowed = set(wanted)
        return lambda r: (
            ((r.get("type") or {}).get("category"), (r["type"] or {}).get("id")) in (allowed)
        )
    raise AssertionError(name)


@dataclass
class Page:
    total: int  # matches of the query (before the 100,000 cap)
    records: list[dict]


class EntityTable:
    """All records of one entity, with one sorted index per sort key."""

    def __init__(self, spec: EntitySpec, is_hidden: Callable[[dict], bool] | None = None):
        self.spec = spec
        self.records: dict[int, dict] = {}
        self._is_hidden = is_hidden or (lambda _r: False)
        self._all: dict[str, SortedList] = {k: SortedList() for k in spec.sort_keys}
        self._visible = (
            {k: SortedList() for k in spec.sort_keys} if spec.hidden_unless else self._all
        )
        self._cache: OrderedDict[tuple, list[int]] = OrderedDict()
        self.version = 0

    # -- maintenance -----------------------------------------------------------------------
    def _entries(self, record: dict) -> Iterator[tuple[str, tuple]]:
        tie = tie_order(record["id"])
        for key in self.spec.sort_keys:
            yield key, (sort_value(record, key), tie, record["id"])

    def load(self, records: Iterable[dict]) -> None:
        """Bulk-load records (replacing the table): one sort per index."""
        self.records = {r["id"]: r for r in records}
        for key in self.spec.sort_keys:
            entries = [
                (sort_value(r, key), tie_order(r["id"]), r["id"]) for r in self.records.values()
            ]
            self._all[key] = SortedList(entries)
            if self.spec.hidden_unless:
                visible = (e for e in entries if not self._is_hidden(self.records[e[2]]))
                self._visible[key] = SortedList(visible)
        self._changed()

    def put(self, record: dict) -> None:
        """Insert or replace one record, keeping every index in step."""
        old = self.records.get(record["id"])
        if old is not None:
            self._unindex(old)
        self.records[record["id"]] = record
        hidden = self._is_hidden(record)
        for key, entry in self._entries(record):
            self._all[key].add(entry)
            if self._visible is not self._all and not hidden:
                self._visible[key].add(entry)
        self._changed()

    def remove(self, record_id: int) -> dict | None:
        old = self.records.pop(record_id, None)
        if old is not None:
            self._unindex(old)
            self._changed()
        return old

    def _unindex(self, record: dict) -> None:
        hidden = self._is_hidden(record)
        for key, entry in self._entries(record):
            self._all[key].discard(entry)
            if self._visible is not self._all and not hidden:
                self._visible[key].discard(entry)

    def _changed(self) -> None:
        self.version += 1
        self._cache.clear()

    def __len__(self) -> int:
        return len(self.records)

    # -- search ----------------------------------------------------------------------------
    def search(self, query: Query) -> Page:
        indexes = self._all if query.include_hidden else self._visible
        matches, total = self._matches(query, indexes)
        reachable = min(total, SEARCH_CAP)
        start = (query.page_number - 1) * query.page_size
        stop = min(start + query.page_size, reachable)
        if start >= stop:
            return Page(total, [])
        ids = matches(start, stop)
        return Page(total, [self.records[i] for i in ids])

    def _matches(
        self, query: Query, indexes: dict[str, SortedList]
    ) -> tuple[Callable[[int, int], list[int]], int]:
        """(a function giving the ids at result positions [start, stop), the match count)."""
        sort_index = indexes[query.sort_by]
        residual = {
            fld: rng
            for fld, rng in query.ranges.items()
            if fld != query.sort_by and _bounds(indexes[fld], rng) != (0, len(indexes[fld]))
        }  # a range on another key that every record satisfies filters nothing
        if residual or query.ids is not None or query.predicates:
            # matches of the other filters, sorted, cached without the sort key's own range:
            # a keyset walk (page 1 of "sort key >= x", x moving) reuses one scan throughout
            key = (query.sort_by, query.include_hidden, tuple(sorted(residual.items())),
                   query.ids, query.predicates)  # fmt: skip
            entries = self._cache.get(key)
            if entries is None:
                entries = self._scan(query, residual, indexes)
                self._cache[key] = entries
                while len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(key)
            sort_index = entries  # type: ignore[assignment]
        lo, hi = _bounds(sort_index, query.ranges.get(query.sort_by))
        if query.descending:
            return (lambda a, b: [e[2] for e in sort_index[hi - b : hi - a][::-1]]), hi - lo
        return (lambda a, b: [e[2] for e in sort_index[lo + a : lo + b]]), hi - lo

    def _scan(self, query: Query, residual: dict, indexes: dict[str, SortedList]) -> list[tuple]:
        """Index entries (sort value, tie, id) matching every filter but the sort key's range."""
        checks: list[Callable[[dict], bool]] = [_predicate(n, w) for n, w in query.predicates]
        checks += [_range_check(fld, lo, hi) for fld, (lo, hi) in residual.items()]
        if query.ids is not None:
            hits = [self.records[i] for i in query.ids if i in self.records]
            if not query.include_hidden:
                hits = [r for r in hits if not self._is_hidden(r)]
        else:
            # drive the scan from the narrowest indexed range
            driver, (lo, hi) = min(
                ((fld, _bounds(indexes[fld], rng)) for fld, rng in residual.items()),
                key=lambda item: item[1][1] - item[1][0],
                default=(query.sort_by, (0, len(indexes[query.sort_by]))),
            )
            if driver == query.sort_by:
                return [e for e in indexes[driver] if all(c(self.records[e[2]]) for c in checks)]
            hits = [self.records[e[2]] for e in indexes[driver].islice(lo, hi)]
        entries = [
            (sort_value(r, query.sort_by), tie_order(r["id"]), r["id"])
            for r in hits
            if all(c(r) for c in checks)
        ]
        entries.sort()
        return entries


def _bounds(index: SortedList | list, rng: tuple[int | None, int | None] | None) -> tuple[int, int]:
    """Positions [lo, hi) of the sorted entries whose key lies in the inclusive range."""
    if rng is None:
        return 0, len(index)
    lo, hi = rng
    find = index.bisect_left if isinstance(index, SortedList) else partial(bisect_left, index)
    start = find((NONE_KEY + 1,) if lo is None else (lo,))
    stop = len(index) if hi is None else find((hi + 1,))
    return start, max(start, stop)


def _range_check(fld: str, lo: int | None, hi: int | None) -> Callable[[dict], bool]:
    def check(record: dict) -> bool:
        value = record.get(fld)
        if value is None:
            return False
        return (lo is None or value >= lo) and (hi is None or value <= hi)

    return check

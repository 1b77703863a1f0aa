"""Copper custom fields as typed columns: stable column names, tolerant value conversion.

Every record carries `custom_fields: [{"custom_field_definition_id": id, "value": v}, ...]`.
`column_names` gives each definition a column name that never changes once assigned (it is
kept in pipeline state), and `CustomFieldPivot` adds one typed `cf_*` key per definition to
each record. Copper's payloads are untidy, so conversion never raises: what is unambiguous is
coerced, anything else becomes None with one warning per (column, problem kind). The raw
`custom_fields` list stays on the record, so nothing is lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pendulum
from dlt.common.normalizers.naming.snake_case import NamingConvention

log = logging.getLogger("copper")

PREFIX = "cf_"

# Copper data_type -> dlt column hint.
# Currency is `decimal`, not `double`: it is money, and analysts sum it; a decimal column sums
# exactly where a double drifts (0.1 + 0.2). dlt coerces a float into a decimal column through
# `Decimal(str(value))` (the shortest repr, so 12.5 stays 12.5, with no binary noise), and an
# int through `Decimal(value)`; `pivot` keeps Currency values finite and inside the 29 integer
# digits that (38, 9) allows, so a load cannot fail on an overflowing value.
TYPE_HINTS: dict[str, dict] = {
    "String": {"data_type": "text"},
    "Text": {"data_type": "text"},
    "URL": {"data_type": "text"},
    "Dropdown": {"data_type": "text"},
    "MultiSelect": {"data_type": "json"},
    "Connect": {"data_type": "json"},
    "Date": {"data_type": "timestamp", "timezone": True},
    "Checkbox": {"data_type": "bool"},
    "Float": {"data_type": "double"},
    "Percentage": {"data_type": "double"},
    "Currency": {"data_type": "decimal", "precision": 38, "scale": 9},
}
FALLBACK_HINT: dict = {"data_type": "text"}  # a data_type Copper adds later is kept as text

_NAMING = NamingConvention()
_ASCII_ALNUM = re.compile(r"[A-Za-z0-9]")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"\d{1,20}")  # ids are 64-bit; int() of 4,300+ digits raises
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ].+)?")
_MIN_EPOCH = -62_135_596_800  # 0001-01-01T00:00:00Z
_MAX_EPOCH = 253_402_300_799  # 9999-12-31T23:59:59Z
_MAX_CURRENCY = 1e29  # decimal(38, 9) holds 29 integer digits
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})

Converter = Callable[[Any], Any]
Warn = Callable[[str, str, Any], None]


# ---------------------------------------------------------------------------------------------
# Column names
# ---------------------------------------------------------------------------------------------


def _definition_id(definition: Any) -> int | None:
    """A definition's id as an int, or None when it has no usable id."""
    if not isinstance(definition, dict):
        return None
    value = definition.get("id")
    if value.__class__ is int:
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value)
    return None


MAX_COLUMN = 59  # Postgres keeps 63 characters: room left for a `_2` collision suffix


def _normalize(identifier: str) -> str | None:
    try:
        return _NAMING.normalize_identifier(identifier)
    except Exception:  # dlt refuses empty identifiers
        return None


def _base_name(definition_id: int, name: Any) -> str:
    """`cf_` + dlt's snake_case of the name; `cf_<id>` when the name has no ASCII letter/digit.

    Long names are cut to fit every destination (Postgres keeps 63 characters, and dlt would
    otherwise shorten the column behind the mapping's back), with a hash of the id appended.
    """
    if isinstance(name, str) and _ASCII_ALNUM.search(name):
        snake = _normalize(name)
        if snake:
            column = _normalize(PREFIX + snake)  # collapses "cf_" + "_launch" to "cf_launch"
            if column and len(column) > MAX_COLUMN:
                digest = hashlib.sha1(str(definition_id).encode()).hexdigest()[:8]
                column = f"{column[: MAX_COLUMN - 9].rstrip('_')}_{digest}"
            if column:
                return column
    return f"{PREFIX}{definition_id}"


def column_names(
    definitions: list[dict], frozen: dict[str, str], reserved: set[str]
) -> dict[str, str]:
    """Definition id (as str, JSON-state friendly) -> column name; returns a new full mapping.

    Entries of `frozen` are kept verbatim, so a renamed field keeps its column and a deleted
    one keeps its entry. New definitions, in ascending id order, get `cf_<snake_case name>`,
    suffixed `_2`, `_3`, ... when the name is already used or in `reserved`.
    """
    mapping = dict(frozen)
    used = set(frozen.values())
    for name in reserved:
        used.add(name)
        normalized = _normalize(name) if isinstance(name, str) else None
        if normalized:
            used.add(normalized)
    new: dict[int, Any] = {}
    for definition in definitions:
        definition_id = _definition_id(definition)
        if definition_id is None:
            log.warning("custom field definition without a usable id ignored: %r", definition)
            continue
        if str(definition_id) not in mapping and definition_id not in new:
            new[definition_id] = definition.get("name")
    for definition_id in sorted(new):
        base = _base_name(definition_id, new[definition_id])
        column, n = base, 1
        while column in used:
            n += 1
            column = f"{base}_{n}"
        mapping[str(definition_id)] = column
        used.add(column)
    return mapping


# ---------------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------------


@dataclass
class FieldSpec:
    """One current custom field definition and its column."""

    definition_id: int
    column: str
    name: str
    data_type: str
    options: dict[int, str]  # option id -> label, in Copper's rank order
    record_types: tuple[str, ...]


def _options(raw: Any) -> dict[int, str]:
    """Option id -> label, ordered by rank; malformed options are skipped."""
    if not isinstance(raw, list):
        return {}
    good = [o for o in raw if isinstance(o, dict) and o.get("id").__class__ is int]
    good.sort(key=lambda o: (o.get("rank") if o.get("rank").__class__ is int else 0, o["id"]))
    return {o["id"]: str(o["id"] if o.get("name") is None else o["name"]) for o in good}


def _spec(definition: dict, definition_id: int, column: str) -> FieldSpec:
    available_on = definition.get("available_on")
    if not isinstance(available_on, list):
        available_on = []
    name = definition.get("name")
    data_type = definition.get("data_type")
    return FieldSpec(
        definition_id=definition_id,
        column=column,
        name=name if isinstance(name, str) else "",
        data_type=data_type if isinstance(data_type, str) else "",
        options=_options(definition.get("options")),
        record_types=tuple(dict.fromkeys(t for t in available_on if isinstance(t, str))),
    )


# ---------------------------------------------------------------------------------------------
# Value conversion: each converter has a fast path for the tidy case; the slow path decides
# what is unambiguous and otherwise returns None (or the raw id) after `warn(column, kind, v)`.
# ---------------------------------------------------------------------------------------------


def _as_id(value: Any) -> int | None:
    """An id from an int, an integral float or a string of digits; None otherwise."""
    cls = value.__class__
    if cls is int:
        return value
    if cls is float and value.is_integer():
        return int(value)
    if cls is str and _INTEGER.fullmatch(value.strip()):
        return int(value)
    return None


def _as_number(value: Any) -> float | None:
    """A finite float from an int, float or numeric string (not a bool); None otherwise."""
    cls = value.__class__
    if cls is str:
        text = value.strip()
        if not _NUMBER.fullmatch(text):
            return None
        value, cls = float(text), float
    if cls is int:
        try:
            value = float(value)
        except OverflowError:
            return None
    elif cls is not float:
        return None
    return value if math.isfinite(value) else None


def _labels(column: str, options: dict[int, str], warn: Warn) -> Converter:
    def one(value: Any) -> str | None:
        ident = _as_id(value)
        if ident is None:
            warn(column, "invalid option id", value)
            return None
        label = options.get(ident)
        if label is None:
            warn(column, "unknown option id", value)
            return str(ident)
        return label

    return one


def _dropdown(column: str, options: dict[int, str], warn: Warn) -> Converter:
    one = _labels(column, options, warn)

    def convert(value: Any) -> str | None:
        if value.__class__ is int:
            label = options.get(value)
            if label is not None:
                return label
        return one(value)

    return convert


def _multiselect(column: str, options: dict[int, str], warn: Warn) -> Converter:
    one = _labels(column, options, warn)

    def convert(value: Any) -> list[str] | None:
        cls = value.__class__
        if cls is list or cls is tuple:
            labels = []
            for v in value:
                label = options.get(v) if v.__class__ is int else None
                if label is None:  # untidy: redo the whole list the careful way
                    labels = [one(v) for v in value]
                    return None if None in labels else labels
                labels.append(label)
            return labels
        label = one(value)  # a bare id stands for a one-element list
        return None if label is None else [label]

    return convert


def _connect(column: str, warn: Warn) -> Converter:
    def convert(value: Any) -> list[int] | None:
        cls = value.__class__
        if cls is list:
            for v in value:
                if v.__class__ is not int:
                    break
            else:
                return value.copy()  # a copy: the raw custom_fields list stays untouched
        items = value if cls is list or cls is tuple else [value]
        ids = [_as_id(v) for v in items]
        if None in ids:
            warn(column, "invalid id", value)
            return None
        return ids

    return convert


def _date(column: str, warn: Warn) -> Converter:
    def epoch(number: float) -> datetime | None:
        if not _MIN_EPOCH <= number <= _MAX_EPOCH:
            warn(column, "date out of range", number)
            return None
        return datetime.fromtimestamp(number, UTC)

    def convert(value: Any) -> Any:
        cls = value.__class__
        if cls is int and _MIN_EPOCH <= value <= _MAX_EPOCH:
            return datetime.fromtimestamp(value, UTC)  # aware, so dlt need not coerce it
        if cls is str:
            text = value.strip()
            if _ISO_DATE.fullmatch(text):
                try:
                    parsed = pendulum.parse(text)
                except Exception:
                    parsed = None
                if isinstance(parsed, pendulum.DateTime):
                    return parsed  # aware: a naive ISO string is read as UTC
                warn(column, "unparseable date", value)
                return None
        number = _as_number(value)
        if number is None:
            warn(column, "unparseable date", value)
            return None
        return epoch(number)

    return convert


def _checkbox(column: str, warn: Warn) -> Converter:
    def convert(value: Any) -> bool | None:
        cls = value.__class__
        if cls is bool:
            return value
        if (cls is int or cls is float) and value in (0, 1):
            return value == 1
        if cls is str:
            text = value.strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
        warn(column, "invalid checkbox", value)
        return None

    return convert


def _number(column: str, warn: Warn, limit: float = math.inf, exact: bool = False) -> Converter:
    """`exact` (Currency): ints stay ints, which dlt turns into decimals digit for digit (as
    a float, 2**53 + 1 would land as 2**53)."""

    def convert(value: Any) -> float | int | None:
        if value.__class__ is float and -limit < value < limit:
            return value  # also rejects NaN
        if exact and value.__class__ is int and -limit < value < limit:
            return value
        number = _as_number(value)
        if number is None:
            warn(column, "invalid number", value)
            return None
        if not -limit < number < limit:
            warn(column, "number out of range", value)
            return None
        return number

    return convert


def _text(column: str, warn: Warn) -> Converter:
    def convert(value: Any) -> str:
        cls = value.__class__
        if cls is str:
            return value
        if cls is int or cls is float:
            return str(value)
        warn(column, "non-text value stored as JSON", value)
        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            return str(value)

    return convert


def _converter(spec: FieldSpec, warn: Warn) -> Converter:
    column, data_type = spec.column, spec.data_type
    if data_type == "Dropdown":
        return _dropdown(column, spec.options, warn)
    if data_type == "MultiSelect":
        return _multiselect(column, spec.options, warn)
    if data_type == "Connect":
        return _connect(column, warn)
    if data_type == "Date":
        return _date(column, warn)
    if data_type == "Checkbox":
        return _checkbox(column, warn)
    if data_type == "Currency":
        return _number(column, warn, _MAX_CURRENCY, exact=True)
    if data_type in ("Float", "Percentage"):
        return _number(column, warn)
    return _text(column, warn)  # String, Text, URL and any data_type Copper adds later


# ---------------------------------------------------------------------------------------------
# Pivot
# ---------------------------------------------------------------------------------------------


Lookup = dict[int, tuple[str, Converter]]  # per record type: def id -> (column, converter)


class CustomFieldPivot:
    """Adds typed `cf_*` columns to records from their raw `custom_fields` list."""

    def __init__(self, definitions: list[dict], columns: dict[str, str]) -> None:
        self._columns = dict(columns)
        self._specs: list[FieldSpec] = []
        self._warned: set[tuple[str, str]] = set()
        # set: warnings go here as (column, kind, example) instead of to the log (a worker
        # process hands them to the main process, which logs each once)
        self.collect: list[tuple[str, str, Any]] | None = None
        seen: set[int] = set()
        for definition in definitions:
            definition_id = _definition_id(definition)
            if definition_id is None or definition_id in seen:
                continue
            seen.add(definition_id)
            column = self._columns.get(str(definition_id))
            if column is None:
                log.warning(
                    "custom field %s (%r) has no column name and is skipped",
                    definition_id,
                    definition.get("name"),
                )
                continue
            spec = _spec(definition, definition_id, column)
            if spec.data_type not in TYPE_HINTS:
                log.warning(
                    "custom field %s: unknown data_type %r, kept as text", column, spec.data_type
                )
            self._specs.append(spec)
        self._specs.sort(key=lambda s: s.definition_id)
        self._lookups: dict[str, Lookup] = {}

    @property
    def columns(self) -> dict[str, str]:
        """Definition id (str) -> column name: the mapping to freeze in source state."""
        return dict(self._columns)

    def specs_for(self, record_type: str) -> list[FieldSpec]:
        """Current definitions available on `record_type`, by ascending id."""
        return [s for s in self._specs if record_type in s.record_types]

    def column_hints(self, record_type: str) -> dict[str, dict]:
        """Column -> dlt column hint for the current definitions of `record_type`."""
        return {
            s.column: dict(TYPE_HINTS.get(s.data_type, FALLBACK_HINT))
            for s in self.specs_for(record_type)
        }

    def pivot(self, record: dict, record_type: str) -> dict:
        """Adds a `cf_*` key to `record` for each custom field set on it (none for unset ones:
        dlt makes a missing key NULL, and skipping it spares every later step a key)."""
        lookup = self._lookups.get(record_type)
        if lookup is None:
            lookup = self._lookup(record_type)
        fields = record.get("custom_fields")
        if not fields:
            return record
        if fields.__class__ is not list:
            self.warn("custom_fields", "not a list", fields)
            return record
        for field in fields:
            try:
                entry = lookup.get(field["custom_field_definition_id"])
            except (TypeError, KeyError):
                self.warn("custom_fields", "malformed entry", field)
                continue
            if entry is None:
                entry = self._slow_lookup(field, lookup)
                if entry is None:
                    continue  # a deleted definition, or one not on this record type
            value = field.get("value")
            if value is not None:
                record[entry[0]] = entry[1](value)
        return record

    def mapping_rows(self) -> list[dict]:
        """Rows of `custom_field_mapping`: one per (definition, record type, option or None)."""
        rows = []
        for spec in self._specs:
            options: list[tuple[int | None, str | None]] = list(spec.options.items()) or [
                (None, None)
            ]
            for record_type in spec.record_types:
                for option_id, option_label in options:
                    rows.append(
                        {
                            "definition_id": spec.definition_id,
                            "field_name": spec.name,
                            "data_type": spec.data_type,
                            "record_type": record_type,
                            "column_name": spec.column,
                            "option_id": option_id,
                            "option_label": option_label,
                        }
                    )
        return rows

    def _lookup(self, record_type: str) -> Lookup:
        specs = self.specs_for(record_type)
        lookup = {s.definition_id: (s.column, _converter(s, self.warn)) for s in specs}
        self._lookups[record_type] = lookup
        return lookup

    def _slow_lookup(self, field: dict, lookup: Lookup) -> tuple[str, Converter] | None:
        """The entry for a definition id sent as a string of digits."""
        definition_id = field["custom_field_definition_id"]
        if definition_id.__class__ is str and _INTEGER.fullmatch(definition_id.strip()):
            return lookup.get(int(definition_id))
        return None

    def warn(self, column: str, kind: str, value: Any) -> None:
        """Logs the first occurrence of each (column, kind)."""
        key = (column, kind)
        if key not in self._warned:
            self._warned.add(key)
            if self.collect is not None:
                self.collect.append((column, kind, value))
                return
            log.warning("custom field %s: %s, e.g. %.200r (raw value kept)", column, kind, value)

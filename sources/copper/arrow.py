"""Pages of records as Arrow tables, for the rows dlt would make of them without normalizing.

dlt normalizes dict rows one by one in Python (flattening, type coercion, ids) and writes every
timestamp through a Python callback into its intermediate files; an Arrow table skips both and
is loaded as it is. `ArrowPages` builds, from a page of prepared records (unset values left
out, timestamps as aware datetimes), the root-table rows dlt's relational normalizer makes
of the same records: every hinted column in the hints' order (nested dicts flattened into
`address__street`..., json columns as dlt's JSON text, money as dlt's decimals), then
`_dlt_load_id` and a random `_dlt_id`, as dlt gives the rows of a merge table.

Only what is unambiguous takes this path. A record with child rows (a non-empty list such as
`emails` or `tags`: dlt loads those into nested tables, which it makes only in its normalizer),
or with a key, type or value dlt would treat in any other way (coerce, put in a variant column,
decode as one of its typed strings, refuse) is handed back, to go to dlt as a dict as before.
`tests/test_cpu_path_equal.py` compares the warehouses of both paths.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
from collections.abc import Collection, Mapping
from decimal import Decimal
from typing import Any

import numpy as np
import pendulum
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.json import PUA_CHARACTER_MAX, PUA_START
from dlt.common.json import json as dlt_json
from dlt.common.normalizers.json.helpers import get_nested_row_hash
from dlt.common.normalizers.utils import DLT_ID_LENGTH_BYTES, generate_dlt_ids

from .settings import LATEST

# Copper's list fields -> the keys of their items (None: a list of strings, which dlt loads
# into a `value` column): each a child table `<entity>__<field>`
CHILD_FIELDS: dict[str, tuple[str, ...] | None] = {
    "emails": ("email", "category"),
    "phone_numbers": ("number", "category"),
    "socials": ("url", "category"),
    "websites": ("url", "category"),
    "tags": None,
}
LOAD_ID, ROW_ID = "_dlt_load_id", "_dlt_id"
ROOT_ID, PARENT_ID, LIST_IDX = "_dlt_root_id", "_dlt_parent_id", "_dlt_list_idx"
# dlt's own columns, with the hints its normalizer gives them (the schema's `default_hints`),
# declared up front so rows from Arrow tables get them too
ROOT_DLT_COLUMNS: dict[str, dict] = {
    LOAD_ID: {"data_type": "text", "nullable": False},
    ROW_ID: {"data_type": "text", "nullable": False, "unique": True, "row_key": True},
}
CHILD_DLT_COLUMNS: dict[str, dict] = {
    ROOT_ID: {"data_type": "text", "nullable": False, "root_key": True},
    PARENT_ID: {"data_type": "text", "nullable": False, "parent_key": True},
    LIST_IDX: {"data_type": "bigint", "nullable": False},
    ROW_ID: {"data_type": "text", "nullable": False, "unique": True, "row_key": True},
}
_CHILD_SCHEMA_TAIL = [
    pa.field(ROOT_ID, pa.string(), nullable=False),
    pa.field(PARENT_ID, pa.string(), nullable=False),
    pa.field(LIST_IDX, pa.int64(), nullable=False),
    pa.field(ROW_ID, pa.string(), nullable=False),
]

_ARROW = {
    "text": pa.string(),
    "bigint": pa.int64(),
    "bool": pa.bool_(),
    "double": pa.float64(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "json": pa.string(),  # dlt's JSON text, as its writers store json columns
}
# the Python classes each column type takes as they are (None is a NULL)
_NONE = type(None)
_CLASSES: dict[str, frozenset[type]] = {
    "text": frozenset({str, _NONE}),
    "bigint": frozenset({int, _NONE}),
    "bool": frozenset({bool, _NONE}),
    "double": frozenset({float, _NONE}),
    # epoch seconds (Copper's) or aware datetimes (the custom field pivot's)
    "timestamp": frozenset({int, dt.datetime, pendulum.DateTime, _NONE}),
    "decimal": frozenset({int, float, _NONE}),
    "json": frozenset({list, dict, _NONE}),
}
# a string starting with one of these is read back by dlt as a typed value (its intermediate
# files mark decimals, datetimes... so): such records keep the dict path
_PUA = f"[{chr(PUA_START)}-{chr(PUA_START + PUA_CHARACTER_MAX)}]"
_PUA_TEXT = "^" + _PUA
_PUA_JSON = '"' + _PUA  # a JSON string (or key) starting with one
_EMPTY: dict = {}
_MIN_EPOCH, _MAX_EPOCH = -62_135_596_800, LATEST  # epoch seconds of years 1-9999
_TEXT = _CLASSES["text"]


class _Untidy(Exception):
    """Records of a page (by index) that must go the dict way."""

    def __init__(self, rows: Collection[int]) -> None:
        super().__init__(f"{len(rows)} record(s) for dlt's normalizer")
        self.rows = set(rows)


class ArrowPages:
    """Splits pages of one entity's prepared records into an Arrow table and the rest."""

    def __init__(
        self, table: str, columns: Mapping[str, Mapping[str, Any]], primary_key: str = "id"
    ) -> None:
        """`columns`: the root table's column hints, in order (dlt's data types)."""
        self.table = table
        self.children = {key: f"{table}__{key}" for key in CHILD_FIELDS}
        self._columns: list[tuple[str, str, pa.Field]] = []  # (column, dlt type, arrow field)
        self._top: dict[str, str] = {}  # record key -> column, for plain values
        self._nested: dict[str, dict[str, str]] = {}  # record key -> {sub key: column}
        for column, hint in columns.items():
            if column in ROOT_DLT_COLUMNS:
                continue
            data_type = hint["data_type"]
            if data_type == "decimal":
                arrow_type = pa.decimal128(hint.get("precision", 38), hint.get("scale", 9))
            else:
                arrow_type = _ARROW[data_type]
            nullable = column != primary_key and hint.get("nullable", True)
            self._columns.append((column, data_type, pa.field(column, arrow_type, nullable)))
            head, sep, tail = column.partition("__")
            if sep and head not in columns and "__" not in tail:
                self._nested.setdefault(head, {})[tail] = column
            else:
                self._top[column] = column
        self._keys = frozenset(self._top) | frozenset(self._nested) | frozenset(CHILD_FIELDS)
        self._sub_keys = {k: frozenset(v) for k, v in self._nested.items()}
        self._schema = pa.schema(
            [f for _, _, f in self._columns]
            + [pa.field(name, pa.string(), nullable=False) for name in ROOT_DLT_COLUMNS]
        )
        # Text and bool columns, nested dicts of them and the child lists are taken apart by
        # pyarrow in one call (`_struct_tables`): its conversion to those types is as strict
        # as `_CLASSES`. To numbers it is not (an int64 takes 1.5 as 1, a double True as
        # 1.0), so the other columns are read from the records in Python, as before.
        types = {column: data_type for column, data_type, _ in self._columns}
        strict = ("text", "bool")
        struct: list[pa.Field] = [
            pa.field(key, _ARROW[types[c]]) for key, c in self._top.items() if types[c] in strict
        ]
        # the other columns, each with the record key and sub key of its values
        where = {c: (k, None) for k, c in self._top.items()}
        where |= {c: (k, sub) for k, subs in self._nested.items() for sub, c in subs.items()}
        self._by_value = [(c, t, f, *where[c]) for c, t, f in self._columns if t not in strict]
        for key, subs in self._nested.items():
            kept = [(sub, _ARROW[types[c]]) for sub, c in subs.items() if types[c] in strict]
            struct.append(pa.field(key, pa.struct(kept)))
        for key, fields in CHILD_FIELDS.items():
            item = pa.string() if fields is None else pa.struct([(f, pa.string()) for f in fields])
            struct.append(pa.field(key, pa.list_(item)))
        self._struct = pa.struct(struct)

    def split(
        self, records: list[dict], load_id: str
    ) -> tuple[list[tuple[str, pa.Table]], list[dict]]:
        """The records' rows as Arrow tables, (table name, table) with the root first (none if
        no record is plain), and the records left for dlt's normalizer, in their order.

        Most records are taken apart by pyarrow (`_struct_tables`); only when that finds
        something to look into (an untidy record) are they checked value by value, and
        the untidy ones found (`_tables`)."""
        keys = self._keys
        if records and all(r.keys() <= keys or _nothing_else(r, keys) for r in records):
            try:
                return self._struct_tables(records, load_id), []
            except (_Untidy, pa.ArrowException, OverflowError, TypeError, ValueError):
                pass  # the checked path finds which
        return self._checked_split(records, load_id)

    def _checked_split(
        self, records: list[dict], load_id: str
    ) -> tuple[list[tuple[str, pa.Table]], list[dict]]:
        """`split`, checking every value in Python and finding the untidy records."""
        keys = self._keys
        is_plain = [r.keys() <= keys or _nothing_else(r, keys) for r in records]
        plain = [r for r, p in zip(records, is_plain, strict=True) if p]
        left = [r for r, p in zip(records, is_plain, strict=True) if not p]
        while plain:
            try:
                return self._tables(plain, load_id), left
            except _Untidy as exc:
                if not exc.rows:  # never expected: rather every record the dict way than a loop
                    exc.rows = set(range(len(plain)))
                left += [r for i, r in enumerate(plain) if i in exc.rows]
                plain = [r for i, r in enumerate(plain) if i not in exc.rows]
        return [], left

    def _struct_tables(self, records: list[dict], load_id: str) -> list[tuple[str, pa.Table]]:
        """The tables `_tables` makes of `records`, with their text, bool, nested and list
        values converted by pyarrow; raises (`_Untidy` or pyarrow's errors) if a value is
        not one its column takes as it is, for the checked path to find it."""
        nested: dict[str, list] = {}  # pyarrow would drop keys it does not know: none here
        for key, allowed in self._sub_keys.items():
            dicts = nested[key] = [_EMPTY if (d := r.get(key)) is None else d for r in records]
            if not all(d.__class__ is dict and d.keys() <= allowed for d in dicts):
                raise _Untidy(())
        for key, fields in CHILD_FIELDS.items():  # pyarrow would take a string for a list
            lists = [v for r in records if (v := r.get(key)) is not None]
            if not all(v.__class__ is list for v in lists):
                raise _Untidy(())
            if fields is not None:
                allowed = frozenset(fields)
                if not all(i.__class__ is dict and i.keys() <= allowed for v in lists for i in v):
                    raise _Untidy(())
        struct = pa.array(records, self._struct)
        n = len(records)
        flat: dict[str, pa.Array] = {}
        for key, subs in self._nested.items():
            parent = struct.field(key)
            for sub, array in zip(parent.type, parent.flatten(), strict=True):
                flat[subs[sub.name]] = array
        arrays = []
        values = iter(
            self._array(
                [r.get(key) for r in records] if sub is None else [d.get(sub) for d in nested[key]],
                data_type,
                field,
            )
            for _, data_type, field, key, sub in self._by_value
        )
        for column, data_type, field in self._columns:
            if data_type not in ("text", "bool"):
                arrays.append(next(values))
                continue
            array = flat[column] if column in flat else struct.field(column)
            if not field.nullable and array.null_count:
                raise _Untidy(())
            if data_type == "text" and _starts_with_pua(array):
                raise _Untidy(())
            arrays.append(array)
        ids = generate_dlt_ids(n)
        arrays += [pa.array([load_id] * n, pa.string()), pa.array(ids, pa.string())]
        tables = [(self.table, pa.Table.from_arrays(arrays, schema=self._schema))]
        for key, fields in CHILD_FIELDS.items():
            child = _child_of_lists(self.children[key], fields, struct.field(key), ids)
            if child is not None:
                tables.append((self.children[key], child))
        return tables

    def _tables(self, records: list[dict], load_id: str) -> list[tuple[str, pa.Table]]:
        values: dict[str, list] = {}
        for key, column in self._top.items():
            values[column] = [r.get(key) for r in records]
        for key, subs in self._nested.items():
            dicts = [_EMPTY if (d := r.get(key)) is None else d for r in records]
            allowed = self._sub_keys[key]
            bad = [i for i, d in enumerate(dicts)
                   if d.__class__ is not dict or not d.keys() <= allowed]  # fmt: skip
            if bad:
                raise _Untidy(bad)
            for sub, column in subs.items():
                values[column] = [d.get(sub) for d in dicts]
        arrays = [self._array(values[c], t, f) for c, t, f in self._columns]
        n = len(records)
        ids = generate_dlt_ids(n)
        arrays += [pa.array([load_id] * n, pa.string()), pa.array(ids, pa.string())]
        tables = [(self.table, pa.Table.from_arrays(arrays, schema=self._schema))]
        for key, fields in CHILD_FIELDS.items():
            child = self._child(self.children[key], fields, [r.get(key) for r in records], ids)
            if child is not None:
                tables.append((self.children[key], child))
        return tables

    def _child(
        self, table: str, fields: tuple[str, ...] | None, lists: list, ids: list[str]
    ) -> pa.Table | None:
        """The child rows of one list field, as dlt's normalizer makes them from the records
        (`ids`: their `_dlt_id`)."""
        bad = [i for i, row in enumerate(lists) if row is not None and row.__class__ is not list]
        if bad:
            raise _Untidy(bad)
        owners: list[int] = []  # the record of each item, by index
        positions: list[int] = []
        items: list = []
        for i, row in enumerate(lists):
            if row:
                owners += [i] * len(row)
                positions += range(len(row))
                items += row
        if not items:
            return None
        if fields is None:  # a list of strings
            bad = [owners[j] for j, item in enumerate(items) if item.__class__ is not str]
            names, columns = ["value"], [items]
        else:  # dicts of strings, each with a value
            allowed = frozenset(fields)
            bad = [owners[j] for j, item in enumerate(items)
                   if item.__class__ is not dict or not item.keys() <= allowed
                   or all(v is None for v in item.values())]  # fmt: skip
            names, columns = [], []
            for field in fields if not bad else ():
                column = [item.get(field) for item in items]
                if not {v.__class__ for v in column} <= _CLASSES["text"]:
                    bad += [owners[j] for j, v in enumerate(column) if v.__class__ not in _TEXT]
                if any(v is not None for v in column):  # dlt makes no column of NULLs only
                    names.append(field)
                    columns.append(column)
        if bad:
            raise _Untidy(bad)
        arrays = []
        for column in columns:
            array = pa.array(column, pa.string())
            pua = pc.match_substring_regex(array, _PUA_TEXT)
            if pc.any(pua).as_py():
                raise _Untidy([owners[j] for j, p in enumerate(pua.to_pylist()) if p])
            arrays.append(array)
        parents = [ids[i] for i in owners]
        pairs = zip(parents, positions, strict=True)
        row_ids = [get_nested_row_hash(p, table, i) for p, i in pairs]
        parent_ids = pa.array(parents, pa.string())
        arrays += [parent_ids, parent_ids, pa.array(positions, pa.int64()), pa.array(row_ids)]
        schema = pa.schema([pa.field(n, pa.string()) for n in names] + _CHILD_SCHEMA_TAIL)
        return pa.Table.from_arrays(arrays, schema=schema)

    def _array(self, values: list, data_type: str, field: pa.Field) -> pa.Array:
        classes = _CLASSES[data_type]
        found = {v.__class__ for v in values}
        if not found <= classes:
            raise _Untidy([i for i, v in enumerate(values) if v.__class__ not in classes])
        if not field.nullable and None in values:
            raise _Untidy([i for i, v in enumerate(values) if v is None])
        if data_type == "decimal":  # as dlt coerces: Decimal(str(a float)), Decimal(an int)
            values = [None if v is None else Decimal(str(v) if v.__class__ is float else v)
                      for v in values]  # fmt: skip
            scale = -field.type.scale
            bad = [i for i, v in enumerate(values) if v is not None
                   and not (v.is_finite() and v.as_tuple().exponent >= scale)]  # fmt: skip
            if bad:
                raise _Untidy(bad)
        elif data_type == "json":
            values = [None if v is None else dlt_json.dumps(v) for v in values]
        elif data_type == "timestamp" and int in found:
            return _epochs(values, found, field.type)
        elif data_type == "timestamp":
            bad = [i for i, v in enumerate(values) if v is not None and v.tzinfo is None]
            if bad:
                raise _Untidy(bad)
        try:
            array = pa.array(values, field.type)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            raise _Untidy(_unconvertible(values, field.type)) from None
        if data_type == "double":
            infinite = pc.invert(pc.is_finite(array))  # dlt's files write NaN as null
            if pc.any(infinite).as_py():
                raise _Untidy([i for i, f in enumerate(infinite.to_pylist()) if f])
        elif data_type == "json" or (data_type == "text" and _may_start_with_pua(array)):
            pua = pc.match_substring_regex(array, _PUA_TEXT if data_type == "text" else _PUA_JSON)
            if pc.any(pua).as_py():
                raise _Untidy([i for i, p in enumerate(pua.to_pylist()) if p])
        return array


def _child_of_lists(
    table: str, fields: tuple[str, ...] | None, lists: pa.ListArray, ids: list[str]
) -> pa.Table | None:
    """The child table `ArrowPages._child` makes of a list column converted by pyarrow
    (None if it has no items); raises `_Untidy` if an item is not plain."""
    items = lists.flatten()
    if not len(items):
        return None
    if items.null_count:  # None in a list
        raise _Untidy(())
    if fields is None:  # a list of strings
        names, columns = ["value"], [items]
    else:  # dicts of strings, each with a value (dlt makes no row of an item of None only)
        subs = [items.field(name) for name in fields]
        unset = subs[0].is_null()
        for column in subs[1:]:
            unset = pc.and_(unset, column.is_null())
        if pc.any(unset).as_py():
            raise _Untidy(())
        pairs = [(n, c) for n, c in zip(fields, subs, strict=True) if c.null_count < len(c)]
        names, columns = [n for n, _ in pairs], [c for _, c in pairs]  # no column of NULLs only
    if any(_starts_with_pua(column) for column in columns):
        raise _Untidy(())
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy()
    owners = np.repeat(np.arange(len(lengths)), lengths)
    positions = np.arange(len(owners)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    parents = [ids[i] for i in owners.tolist()]
    row_ids = _nested_row_hashes(parents, table, positions.tolist())
    parent_ids = pa.array(parents, pa.string())
    arrays = [*columns, parent_ids, parent_ids, pa.array(positions, pa.int64()), pa.array(row_ids)]
    schema = pa.schema([pa.field(n, pa.string()) for n in names] + _CHILD_SCHEMA_TAIL)
    return pa.Table.from_arrays(arrays, schema=schema)


def _nested_row_hashes(parents: list[str], table: str, positions: list[int]) -> list[str]:
    """dlt's `get_nested_row_hash(parent, table, position)` of each child row, in one loop."""
    shake, encode = hashlib.shake_128, base64.b64encode
    return [
        encode(shake(f"{p}_{table}_{i}".encode()).digest(DLT_ID_LENGTH_BYTES))
        .decode("ascii")
        .rstrip("=")
        for p, i in zip(parents, positions, strict=True)
    ]


def _starts_with_pua(array: pa.Array) -> bool:
    """Whether a string of a text column starts with a typed-value mark."""
    return _may_start_with_pua(array) and pc.any(pc.match_substring_regex(array, _PUA_TEXT)).as_py()


def _may_start_with_pua(array: pa.Array) -> bool:
    """False when no string can start with a typed-value mark (the largest is below them)."""
    largest = pc.max(array).as_py()
    return largest is not None and largest >= chr(PUA_START)


def _epochs(values: list, found: set[type], arrow_type: pa.DataType) -> pa.Array:
    """Epoch seconds as timestamps, as `datetime.fromtimestamp(v, UTC)` would give them (the
    dict path's preparation); seconds outside years 1-9999 (a variant column there), or
    mixed with datetimes, go the dict way."""
    if found - {int, _NONE}:
        raise _Untidy([i for i, v in enumerate(values) if v.__class__ is int])
    try:
        seconds = pa.array(values, pa.int64())
    except (pa.ArrowException, OverflowError):
        raise _Untidy(_unconvertible(values, pa.int64())) from None
    bounds = pc.min_max(seconds).as_py()
    if bounds["min"] is not None and not (
        bounds["min"] >= _MIN_EPOCH and bounds["max"] <= _MAX_EPOCH
    ):
        raise _Untidy([i for i, v in enumerate(values)
                       if v is not None and not _MIN_EPOCH <= v <= _MAX_EPOCH])  # fmt: skip
    return pc.multiply(seconds, 1_000_000).cast(arrow_type)


def _nothing_else(record: dict, keys: frozenset[str]) -> bool:
    """Whether the keys of `record` not in `keys` only hold None or empty lists (dlt makes
    nothing of them: no column, no child row)."""
    return all(
        (v := record[k]) is None or (v.__class__ is list and not v) for k in record.keys() - keys
    )


def _unconvertible(values: list, arrow_type: pa.DataType) -> list[int]:
    bad = []
    for i, value in enumerate(values):
        try:
            pa.array([value], arrow_type)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            bad.append(i)
    return bad


class QuietArrowHints(logging.Filter):
    """Drops dlt's warning, for the given resources, that an Arrow table's column hints
    differ from the resource's: json columns are text in Arrow and dlt keeps the resource's
    json, as intended (it logs each difference at INFO level too)."""

    def __init__(self, resources: Collection[str]) -> None:
        super().__init__()
        self._starts = tuple(
            f"In resource: {r}, when merging arrow schema with dlt schema" for r in resources
        )

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self._starts)


def combined(tables: list[pa.Table]) -> pa.Table:
    """Tables of one table name as one: a child table's columns of only NULLs are left out
    page by page (as dlt does), so the union of columns is taken, data columns first in
    their first order, dlt's columns last."""
    if len(tables) == 1:
        return tables[0]
    table = pa.concat_tables(tables, promote_options="default")
    names = table.schema.names
    dlt_columns = [n for n in (ROOT_ID, PARENT_ID, LIST_IDX, LOAD_ID, ROW_ID) if n in names]
    data = [n for n in names if n not in dlt_columns]
    return table.select(data + dlt_columns)

"""Property tests (hypothesis) of the custom-field pivot and of record preparation (`_dlt_row`).

Any JSON value in any custom field, under random definitions of every Copper data_type:
nothing crashes, the raw `custom_fields` list is left exactly as it came, and a typed `cf_*`
value is either a faithful rendering of the raw value or the pivot warned about the field
(then the value is None, or the raw option id / the raw JSON as text): never a silent change.

Values are those a JSON parser gives the source: the client parses with orjson, whose ints
span [-2**63, 2**64) (larger ones arrive as floats). A few examples go end to end, through
dlt into DuckDB, as `copper-pipeline run` loads them (parquet).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pendulum
from dlt.common.data_types import coerce_value, py_type_to_sc_type
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from copper import _dlt_row, _entity_resource
from copper.arrow_processes import ArrowBuilder
from copper.custom_fields import TYPE_HINTS, CustomFieldPivot, column_names
from copper.settings import ENTITY_BY_NAME
from pipelines.runner import LOADER_FORMAT

COPPER_TYPES = tuple(TYPE_HINTS)  # every data_type Copper has
TEXT_TYPES = ("String", "Text", "URL")
RECORD_TYPES = ("person", "company", "lead", "opportunity", "project", "task")
SETTINGS = settings(
    database=None,  # no .hypothesis/ in the working tree; failures print their example
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------

INTS = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what orjson parses as int
HUGE_STRINGS = st.one_of(
    st.integers(4_000, 60_000).map(lambda n: "7" * n),  # digits past int()'s 4,300 limit
    st.integers(4_000, 60_000).map(lambda n: "é🚀" * n),
    st.text(min_size=1, max_size=5).map(lambda s: s * 5_000),
)
TRICKY_STRINGS = st.sampled_from(
    ["", " ", "0", "1", "-3", "1e3", "12.50", "1,234.50", "nan", "inf", "Infinity", "1_000",
     "true", "FALSE", "yes", "2024-03-01", "2024-03-01T10:00:00+02:00", "2024-13-45",
     "03/01/2024", "1709251200", " 1709251200 ", "9" * 25, "\x00", "null", "[1]", "{}"]
)  # fmt: skip
STRINGS = st.one_of(st.text(), TRICKY_STRINGS, INTS.map(str), HUGE_STRINGS)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    INTS,
    st.integers(-100, 100),
    st.integers(2**53 + 1, 2**64 - 1),  # more digits than a float holds
    st.floats(),  # NaN and infinities too: Python's json module parses them
    st.floats(min_value=-1e40, max_value=1e40).filter(lambda f: abs(f) > 1e15),
    STRINGS,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def definitions(draw: st.DrawFn) -> list[Any]:
    """Random definitions: every data_type, odd ids, names, options and availabilities."""
    defs: list[Any] = []
    for _ in range(draw(st.integers(0, 8))):
        options = draw(
            st.lists(
                st.one_of(
                    st.fixed_dictionaries(
                        {"id": st.integers(-5, 50), "name": st.one_of(st.none(), st.text())},
                        optional={"rank": st.one_of(st.integers(-3, 3), st.text(max_size=2))},
                    ),
                    JSON_VALUES,  # a malformed option
                ),
                max_size=5,
            )
        )
        definition = {
            "id": draw(st.one_of(st.integers(1, 30), st.integers(1, 30).map(str), JSON_VALUES)),
            "name": draw(st.one_of(st.text(max_size=80), JSON_VALUES)),
            "data_type": draw(
                st.one_of(st.sampled_from(COPPER_TYPES), st.sampled_from(("Emoji", "")), SCALARS)
            ),
            "available_on": draw(
                st.one_of(st.lists(st.sampled_from((*RECORD_TYPES, "x", 3))), JSON_VALUES)
            ),
            "options": options,
        }
        defs.append(draw(st.one_of(st.just(definition), JSON_VALUES)) if draw(st.booleans())
                    else definition)  # fmt: skip
    return defs


@st.composite
def custom_fields(draw: st.DrawFn, ids: list[Any]) -> Any:
    """A record's custom_fields: entries for known and unknown ids, or something malformed."""
    entries = draw(
        st.lists(
            st.one_of(
                st.fixed_dictionaries(
                    {
                        "custom_field_definition_id": st.one_of(
                            st.sampled_from(ids or [1]), st.integers(1, 40), JSON_VALUES
                        ),
                        "value": JSON_VALUES,
                    }
                ),
                JSON_VALUES,
            ),
            max_size=8,
        )
    )
    return (
        draw(st.one_of(st.just(entries), JSON_VALUES)) if draw(st.integers(0, 9)) == 0 else entries
    )


# One definition of every Copper data_type (plus one Copper may add later), on companies.
OPTIONS = {5: "Tech", 6: "Retail", 7: "Golf"}
EVERY_TYPE = [
    {
        "id": 100 + i,
        "name": f"Field {data_type}",
        "data_type": data_type,
        "available_on": ["company"],
        "options": [{"id": k, "name": v, "rank": k} for k, v in OPTIONS.items()]
        if data_type in ("Dropdown", "MultiSelect")
        else [],
    }
    for i, data_type in enumerate((*COPPER_TYPES, "Emoji"))
]
TYPE_OF = {d["id"]: d["data_type"] for d in EVERY_TYPE}
OPTION_VALUES = st.one_of(
    st.sampled_from([*OPTIONS, 999, -1, 0]),  # known and unknown option ids
    st.sampled_from([*OPTIONS, 999]).map(str),
    st.lists(st.one_of(st.sampled_from([*OPTIONS, 999]), JSON_VALUES), max_size=4),
)
FIELD_VALUES = st.one_of(JSON_VALUES, OPTION_VALUES)


# ---------------------------------------------------------------------------------------------
# The oracle: what an unwarned conversion may be
# ---------------------------------------------------------------------------------------------

NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def as_id(value: Any) -> int | None:
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    if type(value) is str and re.fullmatch(r"\d{1,20}", value.strip()):
        return int(value)
    return None


def as_number(value: Any) -> float | None:
    if type(value) is str and NUMBER.fullmatch(value.strip()):
        value = float(value)
    if type(value) in (int, float):
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    return None


def fits_its_hint(data_type: str, typed: Any) -> bool:
    """A typed value dlt loads into the column the definition's hint declares."""
    if typed is None:
        return True
    if data_type == "MultiSelect":
        ok = type(typed) is list and all(type(v) is str for v in typed)
    elif data_type == "Connect":
        ok = type(typed) is list and all(type(v) is int for v in typed)
    elif data_type == "Date":
        ok = isinstance(typed, datetime) and typed.tzinfo is not None
    elif data_type == "Checkbox":
        ok = type(typed) is bool
    elif data_type in ("Float", "Percentage"):
        ok = type(typed) is float and math.isfinite(typed)
    elif data_type == "Currency":
        ok = type(typed) in (int, float) and math.isfinite(typed) and abs(typed) < 1e29
    else:
        ok = type(typed) is str
    if not ok:
        return False
    hint = TYPE_HINTS.get(data_type, {"data_type": "text"})["data_type"]
    coerce_value(hint, py_type_to_sc_type(type(typed)), typed)  # raises if dlt refuses it
    return True


def faithful(data_type: str, raw: Any, typed: Any) -> bool:
    """Whether `typed` renders `raw` without loss or guess (what may pass unwarned)."""
    if data_type == "Dropdown":
        return as_id(raw) in OPTIONS and typed == OPTIONS[as_id(raw)]
    if data_type == "MultiSelect":
        ids = [as_id(v) for v in (raw if type(raw) is list else [raw])]
        return all(i in OPTIONS for i in ids) and typed == [OPTIONS[i] for i in ids]  # type: ignore[index]
    if data_type == "Connect":
        ids = [as_id(v) for v in (raw if type(raw) is list else [raw])]
        return None not in ids and typed == ids
    if data_type == "Date":
        if type(raw) is str and not NUMBER.fullmatch(raw.strip()):
            return typed == pendulum.parse(raw.strip())
        number = as_number(raw)
        return number is not None and abs(typed.timestamp() - number) < 1e-3
    if data_type == "Checkbox":
        truth = {"true": True, "1": True, "false": False, "0": False}
        if type(raw) is bool:
            return typed is raw
        if type(raw) in (int, float):
            return raw in (0, 1) and typed is (raw == 1)
        return type(raw) is str and truth.get(raw.strip().lower()) is typed
    if data_type in ("Float", "Percentage", "Currency"):
        if data_type == "Currency" and type(raw) is int:
            return typed == raw and Decimal(typed) == Decimal(raw)  # exact, digit for digit
        number = as_number(raw)
        return number is not None and typed == number
    # String, Text, URL and a data_type Copper adds later: text
    if type(raw) is str:
        return typed is raw
    return type(raw) in (int, float) and typed == str(raw)


def warned_value_ok(data_type: str, raw: Any, typed: Any) -> bool:
    """After a warning: None, the raw option ids as text, or the raw JSON as text."""
    if typed is None:
        return True
    if data_type in ("Dropdown", "MultiSelect"):
        labels = typed if data_type == "MultiSelect" else [typed]
        ids = [as_id(v) for v in (raw if type(raw) is list else [raw])]
        return labels == [OPTIONS.get(i, str(i)) for i in ids]  # type: ignore[arg-type]
    if data_type in (*TEXT_TYPES, "Emoji"):
        return typed == json.dumps(raw, ensure_ascii=False)
    return False


@contextmanager
def copper_warnings() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("copper")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def warned_columns(records: list[logging.LogRecord]) -> set[str]:
    return {r.args[0] for r in records if isinstance(r.args, tuple) and r.args}  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# The pivot
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(defs=definitions(), data=st.data())
def test_random_definitions_and_values_never_crash_and_keep_the_raw_list(defs, data) -> None:
    columns = column_names(defs, {}, reserved={"id", "name"})
    pivot = CustomFieldPivot(defs, columns)
    record_type = data.draw(st.sampled_from(RECORD_TYPES))
    ids = [d.get("id") for d in defs if isinstance(d, dict)]
    for _ in range(3):
        fields = data.draw(custom_fields(ids))
        raw = copy.deepcopy(fields)
        record = {"id": 1, "custom_fields": fields}
        out = pivot.pivot(record, record_type)
        assert out is record and out["custom_fields"] is fields
        assert _same(fields, raw)  # the raw list, exactly as it came
        hints = pivot.column_hints(record_type)
        types = {s.column: s.data_type for s in pivot.specs_for(record_type)}
        for key, typed in out.items():
            if key not in ("id", "custom_fields"):
                assert key in hints  # only the record type's current definitions
                assert fits_its_hint(types[key], typed), (key, types[key], typed)


@SETTINGS
@given(values=st.lists(FIELD_VALUES, min_size=len(EVERY_TYPE), max_size=len(EVERY_TYPE)))
@example(values=[None] * COPPER_TYPES.index("Currency") + [2**53 + 1, None])  # not a float
@example(values=["7" * 5000] * len(EVERY_TYPE))  # int() refuses 4,300+ digits
def test_a_value_is_converted_faithfully_or_warned_about(values) -> None:
    columns = column_names(EVERY_TYPE, {}, set())
    with copper_warnings():
        pivot = CustomFieldPivot(EVERY_TYPE, columns)  # warns of "Emoji": not counted
    fields = [
        {"custom_field_definition_id": d["id"], "value": v}
        for d, v in zip(EVERY_TYPE, values, strict=True)
    ]
    raw = copy.deepcopy(fields)
    with copper_warnings() as logged:
        out = pivot.pivot({"id": 1, "custom_fields": fields}, "company")
    assert _same(out["custom_fields"], raw)
    warned = warned_columns(logged)
    for entry in raw:
        column, value = columns[str(entry["custom_field_definition_id"])], entry["value"]
        data_type = TYPE_OF[entry["custom_field_definition_id"]]
        if value is None:
            assert column not in out  # unset: no key, NULL in the warehouse
            continue
        typed = out[column]
        assert fits_its_hint(data_type, typed), (data_type, value, typed)
        if column in warned:
            assert warned_value_ok(data_type, value, typed), (data_type, value, typed)
        else:
            assert faithful(data_type, value, typed), f"silently {value!r} -> {typed!r}"


@SETTINGS
@given(value=FIELD_VALUES, data_type=st.sampled_from(COPPER_TYPES))
def test_each_kind_of_problem_warns_once_and_the_next_record_is_unaffected(value, data_type):
    definition = next(d for d in EVERY_TYPE if d["data_type"] == data_type)
    pivot = CustomFieldPivot(EVERY_TYPE, column_names(EVERY_TYPE, {}, set()))
    column = pivot.columns[str(definition["id"])]
    entry = {"custom_field_definition_id": definition["id"], "value": value}
    with copper_warnings() as logged:
        first = pivot.pivot({"custom_fields": [copy.deepcopy(entry)]}, "company").get(column)
        for _ in range(3):
            again = pivot.pivot({"custom_fields": [copy.deepcopy(entry)]}, "company").get(column)
            assert _same(again, first)  # deterministic, whatever came before
    assert len(logged) == len({(r.args[0], r.args[1]) for r in logged})  # type: ignore[index]


# ---------------------------------------------------------------------------------------------
# Record preparation
# ---------------------------------------------------------------------------------------------

TIMESTAMPS = ("date_created", "date_modified", "due_date")
TIMESTAMP_VALUES = st.one_of(
    JSON_VALUES,
    st.integers(-62_135_596_800, 253_402_300_799),  # years 1-9999
    st.integers(-(2**63), 2**64 - 1),
)


@SETTINGS
@given(
    record=st.dictionaries(
        st.one_of(st.sampled_from(TIMESTAMPS), st.sampled_from(("id", "name", "tags")), st.text()),
        st.one_of(TIMESTAMP_VALUES, JSON_VALUES),
        max_size=8,
    )
)
def test_record_preparation_never_crashes_and_changes_only_timestamps(record) -> None:
    before = dict(record)
    deep = copy.deepcopy(record)
    with copper_warnings() as logged:
        out = _dlt_row(TIMESTAMPS)(record)
    assert out is record
    expected_keys, moved = set(), set()
    for key, original in before.items():
        if original is None:
            continue  # unset: no key, NULL in the warehouse
        if key in TIMESTAMPS and not is_epoch(original) and not dlt_coerces(original):
            variant = f"{key}__v_{py_type_to_sc_type(type(original))}"
            assert out[variant] is original and _same(original, deep[key])  # kept raw
            expected_keys.add(variant)
            moved.add(key)
            continue
        expected_keys.add(key)
        value = out[key]
        if key in TIMESTAMPS and is_epoch(original):
            assert isinstance(value, datetime) and value.tzinfo is not None
            assert int(value.timestamp()) == original
        else:
            assert value is original and _same(value, deep[key])  # untouched
    assert set(out) == expected_keys
    assert {r.args[0] for r in logged} == moved  # type: ignore[index]  # one warning each


def is_epoch(value: Any) -> bool:
    return type(value) is int and -62_135_596_800 <= value <= 253_402_300_799


def dlt_coerces(value: Any) -> bool:
    """Whether dlt's normalizer makes a timestamp of `value` (and does not crash on it)."""
    try:
        coerce_value("timestamp", py_type_to_sc_type(type(value)), value)
    except Exception:
        return False
    return type(value) is not int


# ---------------------------------------------------------------------------------------------
# End to end: through dlt into DuckDB
# ---------------------------------------------------------------------------------------------

JSON_SAFE = st.recursive(  # what orjson gives: no NaN or infinities
    st.one_of(st.none(), st.booleans(), INTS, st.floats(allow_nan=False, allow_infinity=False),
              st.text(), TRICKY_STRINGS),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=5,
)  # fmt: skip
E2E_VALUES = st.one_of(JSON_SAFE, OPTION_VALUES.filter(lambda v: _finite(v)))


@st.composite
def companies(draw: st.DrawFn) -> list[dict]:
    rows = []
    for i in range(draw(st.integers(1, 6))):
        values = draw(st.lists(E2E_VALUES, min_size=len(EVERY_TYPE), max_size=len(EVERY_TYPE)))
        rows.append(
            {
                "id": i + 1,
                "name": draw(st.one_of(st.none(), st.text())),
                "date_created": draw(
                    st.one_of(st.integers(0, 2_000_000_000), TIMESTAMP_VALUES.filter(_finite))
                ),
                "date_modified": draw(st.integers(0, 2_000_000_000)),
                "custom_fields": [
                    {"custom_field_definition_id": d["id"], "value": v}
                    for d, v in zip(EVERY_TYPE, values, strict=True)
                ],
            }
        )
    return rows


class PrepareOnly:
    """An extraction that yields given records as Copper sent them (the resource pivots)."""

    def __init__(self, records: list[dict]) -> None:
        self.records = records

    def pages(self, _state: Any) -> Iterator[list[dict]]:
        yield self.records


@settings(
    database=None, deadline=None, max_examples=6, suppress_health_check=[HealthCheck.too_slow]
)
@given(records=companies())
def test_whole_records_load_into_duckdb(records) -> None:
    entity = ENTITY_BY_NAME["companies"]
    columns = column_names(EVERY_TYPE, {}, {"id", "name"})
    pivot = CustomFieldPivot(EVERY_TYPE, columns)
    raw = copy.deepcopy(records)
    typed = [pivot.pivot(copy.deepcopy(r), "company") for r in raw]
    with tempfile.TemporaryDirectory() as tmp, copper_warnings():
        path = Path(tmp) / "w.duckdb"
        pipeline = dlt.pipeline(
            "properties", pipelines_dir=str(Path(tmp) / "dlt"),
            destination=dlt.destinations.duckdb(str(path)), dataset_name="copper",
        )  # fmt: skip
        builder = ArrowBuilder(pivot, processes=0)
        resource = _entity_resource(entity, PrepareOnly(records), pivot, "soft", builder)
        pipeline.run(resource, loader_file_format=LOADER_FORMAT["duckdb"]).raise_on_failed_jobs()
        with duckdb.connect(str(path), read_only=True) as con:
            cursor = con.execute("select * from copper.companies order by id")
            names = [c[0] for c in cursor.description]
            rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    assert [r["id"] for r in rows] == [r["id"] for r in raw]
    for row, source, expected in zip(rows, raw, typed, strict=True):
        assert json.loads(row["custom_fields"]) == source["custom_fields"]  # raw, as it came
        for definition in EVERY_TYPE:
            column, data_type = columns[str(definition["id"])], definition["data_type"]
            value = expected.get(column)
            landed = row.get(column)
            assert (landed is None) == (value is None), (column, value, landed)
            if value is None:
                continue
            if data_type in ("MultiSelect", "Connect"):
                assert json.loads(landed) == value
            elif data_type == "Currency":
                exact = Decimal(value) if type(value) is int else Decimal(str(value))
                assert landed == exact.quantize(Decimal("1e-9"))  # decimal(38, 9)
            elif data_type == "Date":
                assert abs(landed.timestamp() - value.timestamp()) < 1e-3
            else:
                assert landed == value, (column, value, landed)
        created = source["date_created"]
        if is_epoch(created):
            assert int(row["date_created"].timestamp()) == created
        elif type(created) in (int, float, bool) and not dlt_coerces(created):
            variant = f"date_created__v_{py_type_to_sc_type(type(created))}"
            assert row["date_created"] is None and row[variant] == created  # kept raw


def _finite(value: Any) -> bool:
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(_finite(v) for v in value)
    if type(value) is dict:
        return all(_finite(v) for v in value.values())
    return type(value) is not int or -(2**63) <= value < 2**63


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (NaN equal to NaN, 1 unlike True)."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return a == b or (math.isnan(a) and math.isnan(b))
    if type(a) is list:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b

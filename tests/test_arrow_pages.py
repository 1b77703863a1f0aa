"""`ArrowPages.split`: records taken apart by pyarrow give the tables the value-by-value checks
give, and whatever pyarrow would take differently (a string for a list, 1.5 for an int, an
unknown key) goes the checked way. Both ways are compared on records of every shape."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest
from dlt.common.normalizers.json.helpers import get_nested_row_hash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from copper.arrow import ArrowPages

COLUMNS = {
    "id": {"data_type": "bigint"},
    "name": {"data_type": "text"},
    "vip": {"data_type": "bool"},
    "score": {"data_type": "double"},
    "amount": {"data_type": "decimal", "precision": 38, "scale": 9},
    "date_modified": {"data_type": "timestamp"},  # epoch seconds (or datetimes)
    "cf_start": {"data_type": "timestamp"},  # datetimes, as the custom field pivot gives
    "custom_fields": {"data_type": "json"},
    "address__city": {"data_type": "text"},
    "address__zip": {"data_type": "text"},
    "parent__id": {"data_type": "bigint"},
    "parent__type": {"data_type": "text"},
}
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
)
ANY = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


TEXT = st.one_of(st.none(), st.text(max_size=6))
PUA = st.just("\uf026x")  # starts with one of dlt's typed-value marks: the dict way
EMAIL = st.fixed_dictionaries({}, optional={"email": TEXT, "category": TEXT})
TIDY: dict[str, st.SearchStrategy] = {  # values the columns take as they are
    "name": TEXT,
    "vip": st.one_of(st.none(), st.booleans()),
    "score": st.one_of(st.none(), st.floats(-1e9, 1e9)),
    "amount": st.one_of(st.none(), st.integers(-(10**9), 10**9), st.floats(0, 1e6)),
    "date_modified": st.integers(0, 2**32),
    "cf_start": st.one_of(st.none(), st.datetimes(timezones=st.just(dt.UTC))),
    "custom_fields": st.lists(st.fixed_dictionaries({"id": st.integers(1, 9)})),
    "address": st.one_of(
        st.none(), st.fixed_dictionaries({}, optional={"city": TEXT, "zip": TEXT})
    ),
    "parent": st.fixed_dictionaries({}, optional={"id": st.integers(1, 99), "type": TEXT}),
    "emails": st.lists(EMAIL.filter(lambda e: any(v is not None for v in e.values())), max_size=3),
    "tags": st.lists(st.text(max_size=5), max_size=3),
    "websites": st.one_of(st.none(), st.just([])),
    "unknown": st.one_of(st.none(), st.just([])),  # a key dlt makes nothing of
}
TEXTS = st.one_of(st.text(max_size=4), PUA)
NESTED = st.one_of(  # a key pyarrow would drop, a list of pairs it would take for a dict
    st.fixed_dictionaries({"city": TEXTS}, optional={"street": TEXT, "id": st.integers()}),
    st.just([["city", "c"]]),
)
LISTS = st.one_of(  # a string pyarrow would take for a list of its letters
    st.text(max_size=4),
    st.lists(st.sampled_from(["\uf026x", None, "a"]), min_size=1, max_size=3),
    st.lists(st.one_of(EMAIL, st.fixed_dictionaries({"email": PUA})), min_size=1, max_size=2),
    st.just([{"email": "e", "category": "c", "extra": "x"}]),
    st.just([{"label": "l"}]),
    st.just([{}]),
)
UNTIDY = {  # what may come instead, now and then, besides anything at all
    "id": st.one_of(st.none(), st.floats(0, 9), st.just(2**63)),
    "name": st.one_of(PUA, st.integers(), st.booleans()),
    "vip": st.one_of(st.integers(0, 1), st.text(max_size=2)),
    "score": st.one_of(st.booleans(), st.integers(-5, 5)),
    "amount": st.one_of(st.booleans(), st.floats(0, 1, width=16).map(lambda f: f / 3)),
    "date_modified": st.one_of(
        st.integers(-(2**62), 2**62), st.datetimes(timezones=st.just(dt.UTC)), st.floats(0, 9)
    ),
    "cf_start": st.one_of(st.datetimes(), st.integers(0, 2**32)),
    "custom_fields": st.just([{"id": "\uf026x"}]),
    "address": NESTED,
    "parent": st.one_of(NESTED, st.fixed_dictionaries({"id": st.floats(0, 9)})),
    "emails": LISTS,
    "tags": LISTS,
    "websites": LISTS,
    "unknown": st.one_of(st.just([None]), st.just(1), st.just({})),
}


@st.composite
def records(draw: st.DrawFn) -> list[dict]:
    """A page of tidy records, with an untidy value in a few."""
    out = []
    for i in range(draw(st.integers(1, 12))):
        record: dict[str, Any] = {"id": i + 1}
        for key, values in TIDY.items():
            if draw(st.booleans()):  # a key left out, as a record without it
                record[key] = draw(values)
        if draw(st.integers(0, 5)) == 0:
            key = draw(st.sampled_from(sorted(UNTIDY)))
            record[key] = draw(st.one_of(UNTIDY[key], UNTIDY[key], UNTIDY[key], ANY))
        out.append(record)
    return out


def comparable(tables: list[tuple[str, pa.Table]]) -> dict[str, list[dict]]:
    """The tables' rows with dlt's random row ids replaced by the record's `id`."""
    by_id: dict[str, int] = {}
    out: dict[str, list[dict]] = {}
    for name, table in tables:
        rows = table.to_pylist()
        for row in rows:
            if "_dlt_parent_id" in row:
                parent = row["_dlt_parent_id"]
                assert row["_dlt_id"] == get_nested_row_hash(parent, name, row["_dlt_list_idx"])
                assert row["_dlt_root_id"] == parent
                row["_dlt_id"] = row["_dlt_parent_id"] = row["_dlt_root_id"] = by_id[parent]
            else:
                by_id[row["_dlt_id"]] = row["id"]
                row["_dlt_id"] = row["id"]
        out[name] = rows
        out[f"{name} schema"] = [str(table.schema)]  # type: ignore[list-item]
    return out


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_pyarrow_path_equals_checked_path(page: list[dict]) -> None:
    pages = ArrowPages("people", COLUMNS)
    tables, left = pages.split(page, "1.5")
    checked_tables, checked_left = pages._checked_split(page, "1.5")
    assert left == checked_left
    assert comparable(tables) == comparable(checked_tables)


def test_tidy_records_are_taken_apart_by_pyarrow() -> None:
    page = [
        {
            "id": i,
            "name": f"n{i}",
            "vip": i % 2 == 0,
            "score": 1.5,
            "amount": 10,
            "date_modified": 1_700_000_000 + i,
            "cf_start": dt.datetime(2024, 1, 1, tzinfo=dt.UTC) if i % 2 else None,
            "custom_fields": [{"id": 1, "value": "x"}],
            "address": {"city": "Paris"} if i % 3 else None,
            "parent": {"id": 7, "type": "person"},
            "emails": [{"email": f"{i}@x.com", "category": "work"}] if i % 2 else [],
            "tags": ["a", "b"][: i % 3],
            "websites": [],
            "unknown": None,
        }
        for i in range(1, 300)
    ]
    pages = ArrowPages("people", COLUMNS)
    tables = dict(pages._struct_tables(page, "1.5"))  # raises if it would not
    assert set(tables) == {"people", "people__emails", "people__tags"}
    assert tables["people"].num_rows == 299
    assert comparable(list(tables.items())) == comparable(pages._checked_split(page, "1.5")[0])


@pytest.mark.parametrize(
    "untidy",
    [
        {"tags": "abc"},  # pyarrow: ['a', 'b', 'c']
        {"tags": [None]},
        {"tags": ["\uf026x"]},  # a typed-value mark
        {"emails": [{"email": "\uf026x"}]},
        {"emails": [{"email": "e", "label": "l"}]},  # pyarrow drops the key it does not know
        {"emails": [{}]},  # dlt makes no row of it
        {"emails": [None]},
        {"emails": ["e"]},
        {"emails": {"email": "e"}},
        {"address": {"city": "c", "street": "s"}},
        {"address": [["city", "c"]]},  # pyarrow: a struct of key-value pairs
        {"address": "Paris"},
        {"address": {"city": 5}},
        {"parent": {"id": 1.5}},
        {"id": 1.5},  # pyarrow: 1
        {"id": None},
        {"score": True},  # pyarrow: 1.0
        {"amount": True},
        {"name": "\uf026x"},
        {"name": 5},
        {"vip": 1},
        {"date_modified": 2**62},  # no epoch second of years 1-9999
        {"date_modified": dt.datetime(2024, 1, 1)},  # naive
        {"date_modified": 1.5e9 + 0.5},  # pyarrow: 1500000000 in an int64
        {"parent": {"id": 2.5}},
        {"cf_start": dt.datetime(2024, 1, 1)},
        {"custom_fields": [{"id": "\uf026x"}]},
        {"unknown": [None]},
        {"unknown": 1},
    ],
    ids=repr,
)
def test_what_pyarrow_would_take_differently_goes_the_checked_way(untidy: dict) -> None:
    pages = ArrowPages("people", COLUMNS)
    tidy = {"id": 1, "name": "a", "tags": ["x"], "address": {"city": "c"}, "emails": []}
    page = [tidy, {**tidy, "id": 2, **untidy}, {**tidy, "id": 3}]
    tables, left = pages.split(page, "1.5")
    assert left == [page[1]]
    assert dict(tables)["people"].column("id").to_pylist() == [1, 3]
    assert comparable(tables) == comparable(pages._checked_split(page, "1.5")[0])

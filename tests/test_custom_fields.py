"""Custom field naming, typing and pivoting: pure functions, no HTTP."""

from __future__ import annotations

import copy
import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

import pendulum
import pytest
from dlt.common.data_types import coerce_value, py_type_to_sc_type
from dlt.common.normalizers.naming.snake_case import NamingConvention

from copper.custom_fields import TYPE_HINTS, CustomFieldPivot, FieldSpec, column_names

DEFINITIONS: list[dict[str, Any]] = [
    {
        "id": 101,
        "name": "Industry",
        "canonical_name": None,
        "data_type": "Dropdown",
        "available_on": ["company", "person"],
        "is_filterable": True,
        "options": [{"id": 6, "name": "Retail", "rank": 1}, {"id": 5, "name": "Tech", "rank": 0}],
    },
    {
        "id": 102,
        "name": "Interests",
        "data_type": "MultiSelect",
        "available_on": ["company"],
        "options": [{"id": 7, "name": "Golf", "rank": 0}, {"id": 8, "name": "Chess", "rank": 1}],
    },
    {"id": 103, "name": "Renewal Date", "data_type": "Date", "available_on": ["company"]},
    {"id": 104, "name": "Is Partner", "data_type": "Checkbox", "available_on": ["company"]},
    {"id": 105, "name": "Score", "data_type": "Float", "available_on": ["company"]},
    {"id": 106, "name": "Win %", "data_type": "Percentage", "available_on": ["company"]},
    {
        "id": 107,
        "name": "Deal Size",
        "data_type": "Currency",
        "currency": "USD",
        "available_on": ["company", "opportunity"],
    },
    {"id": 108, "name": "Account No", "data_type": "String", "available_on": ["company"]},
    {"id": 109, "name": "Notes", "data_type": "Text", "available_on": ["company"]},
    {"id": 110, "name": "LinkedIn", "data_type": "URL", "available_on": ["company"]},
    {"id": 111, "name": "Referrer", "data_type": "Connect", "available_on": ["company"]},
    {"id": 112, "name": "Region", "data_type": "String", "available_on": ["lead"]},
]
COLUMN = {
    101: "cf_industry",
    102: "cf_interests",
    103: "cf_renewal_date",
    104: "cf_is_partner",
    105: "cf_score",
    106: "cf_winx",
    107: "cf_deal_size",
    108: "cf_account_no",
    109: "cf_notes",
    110: "cf_linked_in",
    111: "cf_referrer",
    112: "cf_region",
}
UTC = pendulum.UTC


def make_pivot(frozen: dict[str, str] | None = None) -> CustomFieldPivot:
    return CustomFieldPivot(DEFINITIONS, column_names(DEFINITIONS, frozen or {}, {"name", "id"}))


def record(*fields: tuple[Any, Any]) -> dict[str, Any]:
    cfs = [{"custom_field_definition_id": i, "value": v} for i, v in fields]
    return {"id": 1, "name": "Acme", "custom_fields": cfs}


def convert(pivot: CustomFieldPivot, definition_id: int, value: Any) -> Any:
    """The typed value of one field on a company record."""
    return pivot.pivot(record((definition_id, value)), "company").get(COLUMN[definition_id])


def warnings_about(caplog: pytest.LogCaptureFixture, column: str, kind: str) -> int:
    return sum(
        1
        for r in caplog.records
        if r.name == "copper" and r.levelno == logging.WARNING and column in r.getMessage()
        if kind in r.getMessage()
    )


def copper_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "copper"]


@pytest.fixture
def pivot() -> CustomFieldPivot:
    return make_pivot()


# ---------------------------------------------------------------------------------------------
# TYPE_HINTS
# ---------------------------------------------------------------------------------------------


def test_type_hints_for_every_copper_type() -> None:
    assert TYPE_HINTS == {
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


@pytest.mark.parametrize(
    ("definition_id", "value", "expected"),
    [
        (107, 1234.5, Decimal("1234.5")),  # float into decimal: no error, no binary noise
        (107, 0.1, Decimal("0.1")),
        (107, 2, Decimal("2")),
        (103, 1709251200, pendulum.datetime(2024, 3, 1, tz=UTC)),  # epoch int into timestamp
        (103, "2024-03-01", pendulum.datetime(2024, 3, 1, tz=UTC)),
        (105, "12.50", 12.5),
        (104, 1, True),
        (102, [7], ["Golf"]),
        (111, 9, [9]),
        (108, 42, "42"),
    ],
)
def test_converted_values_are_accepted_by_dlt_for_their_hint(
    pivot: CustomFieldPivot, definition_id: int, value: Any, expected: Any
) -> None:
    converted = convert(pivot, definition_id, value)
    to_type = pivot.column_hints("company")[COLUMN[definition_id]]["data_type"]
    coerced = coerce_value(to_type, py_type_to_sc_type(type(converted)), converted)
    assert coerced == expected
    if isinstance(expected, datetime):  # stdlib or pendulum: both aware datetimes for dlt
        assert isinstance(coerced, datetime) and coerced.tzinfo is not None
    else:
        assert type(coerced) is type(expected)


# ---------------------------------------------------------------------------------------------
# column_names
# ---------------------------------------------------------------------------------------------


def test_new_definitions_get_snake_case_names() -> None:
    assert column_names(DEFINITIONS, {}, set()) == {str(i): c for i, c in COLUMN.items()}


def test_renamed_definition_keeps_its_frozen_column() -> None:
    frozen = column_names(DEFINITIONS, {}, set())
    renamed = [dict(d, name="Sector") if d["id"] == 101 else d for d in DEFINITIONS]
    before = dict(frozen)
    mapping = column_names(renamed, frozen, set())
    assert mapping["101"] == "cf_industry"
    assert mapping == before
    assert frozen == before  # the input is not modified
    assert mapping is not frozen


def test_deleted_definition_keeps_its_entry_and_its_name_stays_taken() -> None:
    frozen = {"99": "cf_region"}  # a deleted definition once called "Region"
    mapping = column_names(DEFINITIONS, frozen, set())
    assert mapping["99"] == "cf_region"
    assert mapping["112"] == "cf_region_2"


def test_colliding_names_get_suffixes_in_id_order_deterministically() -> None:
    defs = [
        {"id": 30, "name": "deal_size", "data_type": "Float", "available_on": ["company"]},
        {"id": 20, "name": "Deal-Size", "data_type": "Float", "available_on": ["company"]},
        {"id": 10, "name": "Deal Size", "data_type": "Float", "available_on": ["company"]},
    ]
    expected = {"10": "cf_deal_size", "20": "cf_deal_size_2", "30": "cf_deal_size_3"}
    assert column_names(defs, {}, set()) == expected
    assert column_names(list(reversed(defs)), {}, set()) == expected
    assert column_names(defs, expected, set()) == expected
    # a later definition never moves earlier ones, even with a lower id
    later = [*defs, {"id": 5, "name": "DealSize", "data_type": "Float", "available_on": []}]
    assert column_names(later, expected, set()) == {**expected, "5": "cf_deal_size_4"}


def test_name_clashing_with_a_reserved_column_gets_a_suffix() -> None:
    defs = [{"id": 1, "name": "Name", "data_type": "String", "available_on": ["person"]}]
    assert column_names(defs, {}, {"cf_name"}) == {"1": "cf_name_2"}
    assert column_names(defs, {}, {"cf_name", "cf_name_2"}) == {"1": "cf_name_3"}
    assert column_names(defs, {}, {"name"}) == {"1": "cf_name"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("🚀", "cf_7"),
        ("", "cf_7"),
        ("   ", "cf_7"),
        (None, "cf_7"),
        ("!!!", "cf_7"),
        ("日本語", "cf_7"),
        ("🚀 Launch Date", "cf_launch_date"),
        ("Café Größe", "cf_caf_gr_e"),
        ("123 go", "cf_123_go"),
        ("NPS (0-10)", "cf_nps_0_10x"),
        ("Owner's e-mail", "cf_owner_s_e_mail"),
    ],
)
def test_odd_names_give_valid_dlt_names(name: Any, expected: str) -> None:
    defs = [{"id": 7, "name": name, "data_type": "String", "available_on": ["company"]}]
    column = column_names(defs, {}, set())["7"]
    assert column == expected
    assert NamingConvention().normalize_identifier(column) == column  # dlt keeps it as is


def test_definitions_without_usable_id_are_skipped() -> None:
    defs = [{"name": "No id"}, {"id": None, "name": "Null id"}, "junk", {"id": "12", "name": "A"}]
    assert column_names(defs, {}, set()) == {"12": "cf_a"}  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# CustomFieldPivot: specs, hints, mapping rows
# ---------------------------------------------------------------------------------------------


def test_specs_for_lists_current_definitions_of_a_record_type(pivot: CustomFieldPivot) -> None:
    assert [s.definition_id for s in pivot.specs_for("company")] == list(range(101, 112))
    assert [s.definition_id for s in pivot.specs_for("opportunity")] == [107]
    assert pivot.specs_for("task") == []
    assert pivot.specs_for("person") == [
        FieldSpec(
            definition_id=101,
            column="cf_industry",
            name="Industry",
            data_type="Dropdown",
            options={5: "Tech", 6: "Retail"},
            record_types=("company", "person"),
        )
    ]
    assert list(pivot.specs_for("person")[0].options) == [5, 6]  # rank order


def test_column_hints_per_record_type() -> None:
    pivot = make_pivot(frozen={"99": "cf_gone"})
    hints = pivot.column_hints("company")
    assert hints == {COLUMN[d["id"]]: TYPE_HINTS[d["data_type"]] for d in DEFINITIONS[:11]}
    assert hints["cf_renewal_date"] == {"data_type": "timestamp", "timezone": True}
    assert hints["cf_deal_size"] == {"data_type": "decimal", "precision": 38, "scale": 9}
    assert "cf_gone" not in hints
    assert pivot.column_hints("lead") == {"cf_region": {"data_type": "text"}}
    hints["cf_score"]["data_type"] = "text"  # callers get copies
    assert TYPE_HINTS["Float"] == {"data_type": "double"}


def test_unknown_data_type_is_kept_as_text(caplog: pytest.LogCaptureFixture) -> None:
    defs = [{"id": 1, "name": "Mood", "data_type": "Emoji", "available_on": ["person"]}]
    pivot = CustomFieldPivot(defs, column_names(defs, {}, set()))
    assert pivot.column_hints("person") == {"cf_mood": {"data_type": "text"}}
    assert warnings_about(caplog, "cf_mood", "unknown data_type") == 1
    rec = {"custom_fields": [{"custom_field_definition_id": 1, "value": "🙂"}]}
    assert pivot.pivot(rec, "person")["cf_mood"] == "🙂"


def test_mapping_rows(pivot: CustomFieldPivot) -> None:
    rows = pivot.mapping_rows()
    industry = [r for r in rows if r["definition_id"] == 101]
    base = {"definition_id": 101, "field_name": "Industry", "data_type": "Dropdown"}
    assert industry == [
        {**base, "record_type": "company", "column_name": "cf_industry", "option_id": 5}
        | {"option_label": "Tech"},
        {**base, "record_type": "company", "column_name": "cf_industry", "option_id": 6}
        | {"option_label": "Retail"},
        {**base, "record_type": "person", "column_name": "cf_industry", "option_id": 5}
        | {"option_label": "Tech"},
        {**base, "record_type": "person", "column_name": "cf_industry", "option_id": 6}
        | {"option_label": "Retail"},
    ]
    deal_size = [r for r in rows if r["definition_id"] == 107]
    assert deal_size == [
        {
            "definition_id": 107,
            "field_name": "Deal Size",
            "data_type": "Currency",
            "record_type": rt,
            "column_name": "cf_deal_size",
            "option_id": None,
            "option_label": None,
        }
        for rt in ("company", "opportunity")
    ]
    # 2x2 Industry, 2 Interests, 2 Deal Size, one for each of the 9 other definitions
    assert len(rows) == 4 + 2 + 2 + 9


def test_definition_with_empty_options_gives_one_row() -> None:
    defs = [{"id": 1, "name": "Tier", "data_type": "Dropdown", "available_on": ["lead"]}]
    pivot = CustomFieldPivot(defs, column_names(defs, {}, set()))
    assert pivot.mapping_rows() == [
        {
            "definition_id": 1,
            "field_name": "Tier",
            "data_type": "Dropdown",
            "record_type": "lead",
            "column_name": "cf_tier",
            "option_id": None,
            "option_label": None,
        }
    ]


# ---------------------------------------------------------------------------------------------
# pivot: tidy values of every type
# ---------------------------------------------------------------------------------------------


def test_pivot_converts_every_type(
    pivot: CustomFieldPivot, caplog: pytest.LogCaptureFixture
) -> None:
    rec = record(
        (101, 5),
        (102, [8, 7]),
        (103, 1709251200),
        (104, True),
        (105, 12.5),
        (106, 25),
        (107, 1999.99),
        (108, "AC-10001"),
        (109, "Long notes"),
        (110, "https://www.linkedin.com/in/x"),
        (111, [31, 32]),
    )
    raw = copy.deepcopy(rec["custom_fields"])
    raw_list = rec["custom_fields"]
    out = pivot.pivot(rec, "company")
    assert out is rec
    assert out["custom_fields"] is raw_list
    assert out["custom_fields"] == raw
    typed = {k: v for k, v in out.items() if k.startswith("cf_")}
    assert typed == {
        "cf_industry": "Tech",
        "cf_interests": ["Chess", "Golf"],
        "cf_renewal_date": pendulum.datetime(2024, 3, 1, tz=UTC),
        "cf_is_partner": True,
        "cf_score": 12.5,
        "cf_winx": 25.0,
        "cf_deal_size": 1999.99,
        "cf_account_no": "AC-10001",
        "cf_notes": "Long notes",
        "cf_linked_in": "https://www.linkedin.com/in/x",
        "cf_referrer": [31, 32],
    }
    assert type(typed["cf_winx"]) is float
    assert isinstance(typed["cf_renewal_date"], datetime)
    assert out["cf_referrer"] is not raw_list[10]["value"]  # no list shared with the raw data
    assert copper_warnings(caplog) == []


def test_unset_and_missing_fields_get_no_key(
    pivot: CustomFieldPivot, caplog: pytest.LogCaptureFixture
) -> None:
    """An unset field adds no key: its declared column loads as NULL (see the source tests)."""
    out = pivot.pivot(record((101, None), (105, 3)), "company")
    assert "cf_industry" not in out
    assert out["cf_score"] == 3.0
    assert "cf_referrer" not in out
    bare = pivot.pivot({"id": 2}, "company")
    assert bare == {"id": 2}
    assert pivot.pivot({"id": 3, "custom_fields": None}, "company") == {
        "id": 3,
        "custom_fields": None,
    }
    assert copper_warnings(caplog) == []


def test_only_the_record_types_definitions_become_columns(pivot: CustomFieldPivot) -> None:
    out = pivot.pivot(record((101, 6), (105, 1.5)), "person")  # Score is not on person
    assert {k for k in out if k.startswith("cf_")} == {"cf_industry"}
    assert out["cf_industry"] == "Retail"
    assert pivot.pivot(record((101, 6)), "task") == record((101, 6))


def test_deleted_definition_is_ignored_and_gets_no_key(caplog: pytest.LogCaptureFixture) -> None:
    pivot = make_pivot(frozen={"99": "cf_gone"})
    out = pivot.pivot(record((99, "old value"), (105, 2.5)), "company")
    assert "cf_gone" not in out
    assert out["cf_score"] == 2.5
    assert out["custom_fields"][0] == {"custom_field_definition_id": 99, "value": "old value"}
    assert copper_warnings(caplog) == []


def test_definition_id_sent_as_string_is_matched(pivot: CustomFieldPivot) -> None:
    assert pivot.pivot(record(("105", 4.5)), "company")["cf_score"] == 4.5


# ---------------------------------------------------------------------------------------------
# pivot: untidy values
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("definition_id", "value", "expected"),
    [
        (101, "5", "Tech"),
        (101, 5.0, "Tech"),
        (102, 7, ["Golf"]),
        (102, ["8"], ["Chess"]),
        (102, [], []),
        (103, "2024-03-01", pendulum.datetime(2024, 3, 1, tz=UTC)),
        (103, "2024-03-01T10:00:00+02:00", pendulum.datetime(2024, 3, 1, 8, tz=UTC)),
        (103, "2024-03-01 10:00:00", pendulum.datetime(2024, 3, 1, 10, tz=UTC)),
        (103, "1709251200", pendulum.datetime(2024, 3, 1, tz=UTC)),
        (103, " 1709251200 ", pendulum.datetime(2024, 3, 1, tz=UTC)),
        (103, 1709251200.0, pendulum.datetime(2024, 3, 1, tz=UTC)),
        (103, -86400, pendulum.datetime(1969, 12, 31, tz=UTC)),
        (104, False, False),
        (104, 0, False),
        (104, 1, True),
        (104, 1.0, True),
        (104, "true", True),
        (104, "FALSE", False),
        (104, "1", True),
        (104, "0", False),
        (105, "12.50", 12.5),
        (105, " -3 ", -3.0),
        (105, "1e3", 1000.0),
        (105, 7, 7.0),
        (106, "33.3", 33.3),
        (107, "1500", 1500.0),
        (108, 12345, "12345"),
        (109, 1.5, "1.5"),
        (110, 0, "0"),
        (111, 9, [9]),
        (111, ["10", 11], [10, 11]),
        (111, [], []),
    ],
)
def test_unambiguous_untidy_values_are_coerced_silently(
    pivot: CustomFieldPivot,
    caplog: pytest.LogCaptureFixture,
    definition_id: int,
    value: Any,
    expected: Any,
) -> None:
    converted = convert(pivot, definition_id, value)
    assert converted == expected
    if isinstance(expected, datetime):
        assert isinstance(converted, datetime) and converted.tzinfo is not None
    else:
        assert type(converted) is type(expected)
    if isinstance(expected, pendulum.DateTime):
        assert converted.utcoffset() is not None
    assert copper_warnings(caplog) == []


@pytest.mark.parametrize(
    ("definition_id", "value", "expected", "kind"),
    [
        (101, 999, "999", "unknown option id"),  # a deleted option: the raw id as text
        (101, "abc", None, "invalid option id"),
        (101, True, None, "invalid option id"),
        (101, [5], None, "invalid option id"),
        (102, [5, 999], ["5", "999"], "unknown option id"),  # 5 is not an Interests option
        (102, 999, ["999"], "unknown option id"),
        (102, ["x"], None, "invalid option id"),
        (102, {"id": 7}, None, "invalid option id"),
        (103, "garbage", None, "unparseable date"),
        (103, "03/01/2024", None, "unparseable date"),
        (103, "2024-13-45", None, "unparseable date"),
        (103, True, None, "unparseable date"),
        (103, [1709251200], None, "unparseable date"),
        (103, 1709251200000, None, "date out of range"),  # milliseconds: ambiguous
        (104, "yes", None, "invalid checkbox"),
        (104, 2, None, "invalid checkbox"),
        (104, None, None, None),
        (105, True, None, "invalid number"),
        (105, "1,234.50", None, "invalid number"),
        (105, "$12", None, "invalid number"),
        (105, "nan", None, "invalid number"),
        (105, float("inf"), None, "invalid number"),
        (105, 10**400, None, "invalid number"),
        (105, [1.5], None, "invalid number"),
        (106, "", None, "invalid number"),
        (107, 1e30, None, "number out of range"),  # does not fit decimal(38, 9)
        (107, "abc", None, "invalid number"),
        (108, [1, 2], "[1, 2]", "non-text value stored as JSON"),
        (109, {"a": "é"}, '{"a": "é"}', "non-text value stored as JSON"),
        (110, True, "true", "non-text value stored as JSON"),
        (111, ["x"], None, "invalid id"),
        (111, [1, None], None, "invalid id"),
        (111, "abc", None, "invalid id"),
    ],
)
def test_ambiguous_values_become_none_or_raw_id_with_one_warning(
    pivot: CustomFieldPivot,
    caplog: pytest.LogCaptureFixture,
    definition_id: int,
    value: Any,
    expected: Any,
    kind: str | None,
) -> None:
    column = COLUMN[definition_id]
    for _ in range(3):
        assert convert(pivot, definition_id, value) == expected
    if kind is None:
        assert copper_warnings(caplog) == []
    else:
        assert warnings_about(caplog, column, kind) == 1
        assert len(copper_warnings(caplog)) == 1


def test_multiselect_keeps_known_labels_and_raw_ids_for_deleted_options(
    pivot: CustomFieldPivot, caplog: pytest.LogCaptureFixture
) -> None:
    assert convert(pivot, 102, [7, 999, 8]) == ["Golf", "999", "Chess"]
    assert warnings_about(caplog, "cf_interests", "unknown option id") == 1


def test_warnings_are_once_per_column_and_kind(
    pivot: CustomFieldPivot, caplog: pytest.LogCaptureFixture
) -> None:
    records = [
        record((105, "abc"), (106, "abc"), (101, 999)),
        record((105, "x"), (106, "y"), (101, 998), (107, 1e30)),
        record((105, 1e400), (101, "junk"), (107, 2e30)),
    ]
    for rec in records:
        pivot.pivot(rec, "company")
    assert warnings_about(caplog, "cf_score", "invalid number") == 1
    assert warnings_about(caplog, "cf_winx", "invalid number") == 1
    assert warnings_about(caplog, "cf_industry", "unknown option id") == 1
    assert warnings_about(caplog, "cf_industry", "invalid option id") == 1
    assert warnings_about(caplog, "cf_deal_size", "number out of range") == 1
    assert len(copper_warnings(caplog)) == 5
    # a new pivot (a new run) warns again
    make_pivot().pivot(record((105, "abc")), "company")
    assert warnings_about(caplog, "cf_score", "invalid number") == 2


def test_malformed_custom_fields_never_crash(
    pivot: CustomFieldPivot, caplog: pytest.LogCaptureFixture
) -> None:
    out = pivot.pivot({"id": 1, "custom_fields": "oops"}, "company")
    assert out["custom_fields"] == "oops"
    assert "cf_score" not in out
    entries = ["junk", None, {"value": 3}, {"custom_field_definition_id": 105, "value": 8}]
    out = pivot.pivot({"id": 2, "custom_fields": entries}, "company")
    assert out["cf_score"] == 8.0
    assert out["custom_fields"] == ["junk", None, {"value": 3}, entries[3]]
    assert warnings_about(caplog, "custom_fields", "not a list") == 1
    assert warnings_about(caplog, "custom_fields", "malformed entry") == 1


def test_malformed_definitions_never_crash(caplog: pytest.LogCaptureFixture) -> None:
    defs: list[Any] = [
        "junk",
        {"id": 1, "name": "Kind", "data_type": "Dropdown", "available_on": "company"},
        {"id": 2, "name": "Tier", "data_type": "Dropdown", "available_on": ["lead", 3]},
        {"id": 2, "name": "Dup", "data_type": "Float", "available_on": ["lead"]},
        {"id": 3, "name": "Lost", "data_type": "Float", "available_on": ["lead"]},
    ]
    defs[2]["options"] = [{"id": 4, "name": None}, {"id": "x", "name": "Bad"}, "junk"]
    pivot = CustomFieldPivot(defs, {"1": "cf_kind", "2": "cf_tier"})  # "3" has no column
    assert pivot.specs_for("company") == []
    assert [s.column for s in pivot.specs_for("lead")] == ["cf_tier"]
    assert pivot.specs_for("lead")[0].options == {4: "4"}
    assert pivot.pivot(record((2, 4), (3, 1.0)), "lead") | {"custom_fields": None} == {
        "id": 1,
        "name": "Acme",
        "custom_fields": None,
        "cf_tier": "4",
    }
    assert warnings_about(caplog, "3", "no column name") == 1

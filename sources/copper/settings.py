"""Copper's facts in one place: limits, paths, and the entities as data."""

from __future__ import annotations

from dataclasses import dataclass, field

BASE_URL = "https://api.copper.com/developer_api/v1"
MONEY = {"data_type": "decimal", "precision": 38, "scale": 9}  # sums exactly, unlike double
PAGE_SIZE = 200  # Copper's maximum page_size
SEARCH_CAP = 100_000  # only the first 100,000 matches of one search are reachable
REQUESTS_PER_MINUTE = 180  # per account, in any rolling 60 s
ACTIVITY_LOOKBACK_DAYS = 30
LATEST = 253_402_300_799  # 9999-12-31 23:59:59 UTC: the end of an open cursor range
WEBHOOK_TYPES = {"activities": "activity_log"}  # Copper's webhook `type`, if not record_type


ADDRESS = {f"address__{k}": "text" for k in ("street", "city", "state", "postal_code", "country")}
NAME_PARTS = {k: "text" for k in ("prefix", "first_name", "middle_name", "last_name", "suffix")}
RELATED = {"related_resource__id": "bigint", "related_resource__type": "text"}


def _columns(**types: str) -> dict[str, str]:
    """Documented fields typed up front, so every account gets the same columns even when a
    field is empty everywhere (dlt only creates untyped columns once a value arrives)."""
    common = {"id": "bigint", "name": "text", "assignee_id": "bigint", "details": "text"}
    return {**common, **types}


@dataclass(frozen=True)
class Entity:
    """One searchable Copper record type and how it is replicated."""

    name: str  # resource and table name, and the path segment: POST /{name}/search
    record_type: str  # Copper's singular type, as used in custom field `available_on`
    cursor: str = "date_modified"  # incremental cursor field (epoch seconds)
    cursor_filter: str = "modified_date"  # minimum_/maximum_{cursor_filter}
    # keys a window is walked by, as (field, filter stem): the first orders the walk, the
    # second splits a second of the first that a whole page shares. date_created first: it
    # never changes and bulk edits do not crowd it the way they crowd date_modified
    walk: tuple[tuple[str, str], ...] = (
        ("date_created", "created_date"),
        ("date_modified", "modified_date"),
    )
    # the immutable key deletions are reconciled by (field, filter stem): counts per range
    reconcile_key: tuple[str, str] = ("date_created", "created_date")
    extra_body: dict = field(default_factory=dict)  # fixed search fields
    timestamps: tuple[str, ...] = ("date_created", "date_modified")
    has_custom_fields: bool = True
    future_dated: bool = False  # cursor values may lie ahead of the run (meetings to come)
    lookback_days: int = 0  # re-read this much before the cursor every run
    money: tuple[str, ...] = ()  # numbers Copper sends as int or float: typed decimal up front
    columns: dict[str, str] = field(default_factory=_columns)  # documented field -> dlt type


ENTITIES: tuple[Entity, ...] = (
    Entity(
        "people",
        "person",
        timestamps=("date_created", "date_modified", "date_last_contacted"),
        columns=_columns(
            **NAME_PARTS,
            **ADDRESS,
            title="text",
            company_id="bigint",
            company_name="text",
            contact_type_id="bigint",
            interaction_count="bigint",
        ),
    ),
    Entity(
        "companies",
        "company",
        columns=_columns(
            **ADDRESS,
            email_domain="text",
            contact_type_id="bigint",
            primary_contact_id="bigint",
            interaction_count="bigint",
        ),
    ),
    Entity(
        "leads",
        "lead",
        extra_body={"include_converted_leads": True},
        timestamps=("date_created", "date_modified", "converted_timestamp"),
        money=("monetary_value", "converted_value"),
        columns=_columns(
            **NAME_PARTS,
            **ADDRESS,
            title="text",
            company_name="text",
            customer_source_id="bigint",
            status="text",
            status_id="bigint",
            email__email="text",
            email__category="text",
            converted_opportunity_id="bigint",
            converted_unit="text",
            interaction_count="bigint",
        ),
    ),
    Entity(
        "opportunities",
        "opportunity",
        timestamps=("date_created", "date_modified", "date_stage_changed", "date_last_contacted"),
        money=("monetary_value",),
        columns=_columns(
            close_date="text",
            company_id="bigint",
            company_name="text",
            customer_source_id="bigint",
            loss_reason_id="bigint",
            pipeline_id="bigint",
            pipeline_stage_id="bigint",
            primary_contact_id="bigint",
            priority="text",
            status="text",
            win_probability="bigint",
            interaction_count="bigint",
            pipeline_type="text",
            pipeline_is_revenue="bool",
        ),
    ),
    Entity("projects", "project", columns=_columns(**RELATED, status="text")),
    Entity(
        "tasks",
        "task",
        timestamps=("date_created", "date_modified", "due_date", "reminder_date", "completed_date"),
        columns=_columns(
            **RELATED, status="text", priority="text", custom_activity_type_id="bigint"
        ),
    ),
    Entity(
        "activities",
        "activity",
        cursor="activity_date",
        cursor_filter="activity_date",
        walk=(("activity_date", "activity_date"), ("date_created", "created_date")),
        # Copper documents activity_date as the activities' filter; it can be edited, which
        # the reconciliation survives (an id is deleted only if no listing of the run has it)
        reconcile_key=("activity_date", "activity_date"),
        future_dated=True,
        timestamps=("date_created", "date_modified", "activity_date"),
        has_custom_fields=False,
        lookback_days=ACTIVITY_LOOKBACK_DAYS,
        columns={
            "id": "bigint",
            "details": "text",
            "user_id": "bigint",
            "parent__id": "bigint",
            "parent__type": "text",
            "type__id": "bigint",
            "type__category": "text",
            "old_value__id": "bigint",
            "old_value__name": "text",
            "new_value__id": "bigint",
            "new_value__name": "text",
        },
    ),
)
ENTITY_BY_NAME = {e.name: e for e in ENTITIES}
ENTITY_BY_WEBHOOK_TYPE = {WEBHOOK_TYPES.get(e.name, e.record_type): e for e in ENTITIES}


@dataclass(frozen=True)
class Reference:
    """A small lookup table loaded whole (write disposition `replace`) each run."""

    name: str
    path: str
    primary_key: str | tuple[str, ...] | None = "id"
    method: str = "GET"
    # documented text fields often null in every row: typed up front, so the column exists
    # and dlt does not warn that it could not infer a type
    text_columns: tuple[str, ...] = ()


REFERENCES: tuple[Reference, ...] = (
    Reference("users", "/users/search", method="POST"),
    Reference("account", "/account", text_columns=("logo",)),
    Reference("pipelines", "/pipelines"),
    Reference("pipeline_stages", "/pipeline_stages"),
    Reference(
        "custom_field_definitions", "/custom_field_definitions", text_columns=("canonical_name",)
    ),
    Reference("lead_statuses", "/lead_statuses"),
    Reference("customer_sources", "/customer_sources"),
    Reference("loss_reasons", "/loss_reasons"),
    Reference("contact_types", "/contact_types"),
    Reference("activity_types", "/activity_types", primary_key=("category", "id")),
    Reference("tags", "/tags", primary_key="name"),
)

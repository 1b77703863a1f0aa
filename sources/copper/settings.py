"""Copper's facts in one place: limits, paths, and the entities as data."""

from __future__ import annotations

from dataclasses import dataclass, field

BASE_URL = "https://api.copper.com/developer_api/v1"
MONEY = {"data_type": "decimal", "precision": 38, "scale": 9}  # sums exactly, unlike double
PAGE_SIZE = 200  # Copper's maximum page_size
SEARCH_CAP = 100_000  # only the first 100,000 matches of one search are reachable
REQUESTS_PER_MINUTE = 180  # per account, in any rolling 60 s
ACTIVITY_LOOKBACK_DAYS = 30


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
    extra_body: dict = field(default_factory=dict)  # fixed search fields
    timestamps: tuple[str, ...] = ("date_created", "date_modified")
    has_custom_fields: bool = True
    lookback_days: int = 0  # re-read this much before the cursor every run
    money: tuple[str, ...] = ()  # numbers Copper sends as int or float: typed decimal up front


ENTITIES: tuple[Entity, ...] = (
    Entity("people", "person", timestamps=("date_created", "date_modified", "date_last_contacted")),
    Entity("companies", "company"),
    Entity(
        "leads",
        "lead",
        extra_body={"include_converted_leads": True},
        timestamps=("date_created", "date_modified", "converted_timestamp"),
        money=("monetary_value", "converted_value"),
    ),
    Entity(
        "opportunities",
        "opportunity",
        timestamps=("date_created", "date_modified", "date_stage_changed", "date_last_contacted"),
        money=("monetary_value",),
    ),
    Entity("projects", "project"),
    Entity(
        "tasks",
        "task",
        timestamps=("date_created", "date_modified", "due_date", "reminder_date", "completed_date"),
    ),
    Entity(
        "activities",
        "activity",
        cursor="activity_date",
        cursor_filter="activity_date",
        walk=(("activity_date", "activity_date"), ("date_created", "created_date")),
        timestamps=("date_created", "date_modified", "activity_date"),
        has_custom_fields=False,
        lookback_days=ACTIVITY_LOOKBACK_DAYS,
    ),
)
ENTITY_BY_NAME = {e.name: e for e in ENTITIES}


@dataclass(frozen=True)
class Reference:
    """A small lookup table loaded whole (write disposition `replace`) each run."""

    name: str
    path: str
    primary_key: str | None = "id"
    method: str = "GET"


REFERENCES: tuple[Reference, ...] = (
    Reference("users", "/users/search", method="POST"),
    Reference("account", "/account"),
    Reference("pipelines", "/pipelines"),
    Reference("pipeline_stages", "/pipeline_stages"),
    Reference("custom_field_definitions", "/custom_field_definitions"),
    Reference("lead_statuses", "/lead_statuses"),
    Reference("customer_sources", "/customer_sources"),
    Reference("loss_reasons", "/loss_reasons"),
    Reference("contact_types", "/contact_types"),
    Reference("activity_types", "/activity_types"),
    Reference("tags", "/tags", primary_key="name"),
)

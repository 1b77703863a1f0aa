"""One simulated Copper account: its records, reference data, clock, and the mutation API.

Every method is thread-safe (one lock per account), so tests can mutate the account from their
own thread while the HTTP server answers the pipeline from another. Every record mutation is
announced to `listeners` as a `Change` (webhook delivery listens), under the account's lock.
"""

from __future__ import annotations

import gc
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from .generator import ENTITIES, AccountData, generate_account
from .store import SPECS, EntityTable, Page, parse_query

ENTITY_TYPE = {
    "people": "person",
    "companies": "company",
    "leads": "lead",
    "opportunities": "opportunity",
    "projects": "project",
    "tasks": "task",
    "activities": "activity",
}
TAGGED = ("people", "leads", "companies", "opportunities", "projects", "tasks")
DATA_TYPES = (
    "String", "Text", "Dropdown", "MultiSelect", "Date", "Checkbox",
    "Float", "URL", "Percentage", "Currency", "Connect",
)  # fmt: skip


log = logging.getLogger(__name__)


class NotFound(KeyError):
    """No such record or definition (HTTP 404)."""


class InvalidInput(ValueError):
    """A request Copper would refuse as invalid (HTTP 422)."""


@dataclass(frozen=True)
class Change:
    """One record mutation: event is "new", "update" or "delete" (Copper's webhook events)."""

    entity: str
    event: str
    ids: tuple[int, ...]
    updated_attributes: dict | None = None  # update only: {field: [old, new]}


class Clock:
    """The account's clock: wall time plus an offset that tests can move."""

    def __init__(self, offset: int = 0) -> None:
        self.offset = offset

    def now(self) -> int:
        return int(time.time()) + self.offset

    def advance(self, seconds: int) -> int:
        self.offset += int(seconds)
        return self.now()


def _copy(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


class SandboxAccount:
    """The state behind the sandbox server."""

    def __init__(self, data: AccountData, clock: Clock | None = None) -> None:
        self.lock = threading.RLock()
        self.clock = clock or Clock()
        self.account = data.account
        self.users = data.users
        self.pipelines = data.pipelines
        self.lead_statuses = data.lead_statuses
        self.customer_sources = data.customer_sources
        self.loss_reasons = data.loss_reasons
        self.contact_types = data.contact_types
        self.activity_types = data.activity_types
        self.webhooks: list[dict] = []  # webhook subscriptions (see webhooks.py)
        self.listeners: list[Callable[[Change], None]] = []
        self.deletions: dict[str, list[dict]] = {e: [] for e in ENTITIES}  # id, deleted_at, source
        self._graveyard: dict[str, dict[int, dict]] = {e: {} for e in ENTITIES}
        self.definitions: dict[int, dict] = {d["id"]: d for d in data.custom_field_definitions}
        self._next_ids = dict(data.next_ids)
        self.tables: dict[str, EntityTable] = {}
        for entity in ENTITIES:
            hidden = _is_converted if entity == "leads" else None
            table = EntityTable(SPECS[entity], hidden)
            table.load(data.records.get(entity, []))
            self.tables[entity] = table
        self._tags_cache: tuple[tuple, list[dict]] | None = None
        gc.freeze()  # millions of acyclic records: keep them out of full collections

    @classmethod
    def generate(cls, seed: int = 0, scale: float = 1.0, **kwargs: Any) -> SandboxAccount:
        return cls(generate_account(seed=seed, scale=scale, **kwargs))

    # -- reads -----------------------------------------------------------------------------
    def search(self, entity: str, body: dict, ignored_filters: tuple[str, ...] = ()) -> Page:
        with self.lock:
            table = self._table(entity)
            return table.search(parse_query(table.spec, body, ignored_filters))

    def get(self, entity: str, record_id: int) -> dict:
        with self.lock:
            record = self._table(entity).records.get(record_id)
            if record is None:
                raise NotFound(f"{ENTITY_TYPE[entity]} {record_id} not found")
            return record

    def snapshot(self, entity: str) -> list[dict]:
        """Ground truth: every current record of an entity, converted leads included."""
        with self.lock:
            return _copy(sorted(self._table(entity).records.values(), key=lambda r: r["id"]))

    def count(self, entity: str) -> int:
        return len(self._table(entity))

    def custom_field_definitions(self) -> list[dict]:
        with self.lock:
            return list(self.definitions.values())

    def pipeline_stages(self) -> list[dict]:
        return [{**stage, "pipeline_id": p["id"]} for p in self.pipelines for stage in p["stages"]]

    def tags(self) -> list[dict]:
        """Tags with their usage counts, as GET /tags returns them."""
        with self.lock:
            versions = tuple(self.tables[e].version for e in TAGGED)
            if self._tags_cache and self._tags_cache[0] == versions:
                return self._tags_cache[1]
            counts: dict[str, Counter] = {}
            for entity in TAGGED:
                for record in self.tables[entity].records.values():
                    for tag in record.get("tags") or ():
                        counts.setdefault(tag, Counter())[entity] += 1
            tags = [
                {"name": name, "count": sum(c.values())}
                | {f"count_{e}": c.get(e, 0) for e in TAGGED}
                for name, c in sorted(counts.items())
            ]
            self._tags_cache = (versions, tags)
            return tags

    def user(self, email: str) -> dict | None:
        return next((u for u in self.users if u["email"].lower() == email.lower()), None)

    # -- record mutations ------------------------------------------------------------------
    def create(self, entity: str, fields: dict, record_id: int | None = None) -> dict:
        """Create a record; ids and dates are assigned like Copper does.

        `record_id` (sandbox only) re-creates a record under an id that is not present, e.g. a
        deleted one: real Copper never does that, a recreated record gets a new id there.
        """
        with self.lock:
            table = self._table(entity)
            if record_id is None:
                record_id = self._new_id(entity)
            elif record_id in table.records:
                raise InvalidInput(f"{ENTITY_TYPE[entity]} {record_id} already exists")
            else:
                self._next_ids[entity] = max(self._next_ids.get(entity, 1), record_id + 1)
            now = self.clock.now()
            record = _copy(fields)
            record["id"] = record_id
            record.setdefault("date_created", now)
            record["date_modified"] = now
            if entity != "activities":
                record.setdefault("tags", [])
                record["custom_fields"] = self._merge_custom_fields(
                    entity, [], record.get("custom_fields") or []
                )
            table.put(record)
            self._emit(entity, "new", record_id)
            return _copy(record)

    def update(
        self, entity: str, record_id: int, fields: dict, *, notify: bool | None = None
    ) -> dict:
        """Change fields of a record and bump its date_modified to the account clock.

        Announced as an "update" when a field other than date_modified changed (notify=None),
        always (True: a user's edit the sandbox does not model) or never (False).
        """
        with self.lock:
            old = self.get(entity, record_id)
            record = {**old, **_copy(fields), "id": record_id}
            if "custom_fields" in fields:
                record["custom_fields"] = self._merge_custom_fields(
                    entity, old.get("custom_fields") or [], fields["custom_fields"] or []
                )
            record["date_modified"] = self.clock.now()
            self._table(entity).put(record)
            changed = _changed_attributes(old, record)
            if notify or (notify is None and changed):
                self._emit(entity, "update", record_id, changed)
            return _copy(record)

    def delete(self, entity: str, record_id: int, source: str = "admin") -> dict:
        """Remove a record (`source` says who: admin, api, chaos); its last copy is kept."""
        with self.lock:
            record = self._table(entity).remove(record_id)
            if record is None:
                raise NotFound(f"{ENTITY_TYPE[entity]} {record_id} not found")
            self._graveyard[entity][record_id] = record
            self.deletions[entity].append(
                {"id": record_id, "deleted_at": self.clock.now(), "source": source}
            )
            self._emit(entity, "delete", record_id)
            return {"id": record_id, "is_deleted": True}

    def restore(self, entity: str, record_id: int) -> dict:
        """Put back the last deleted copy of a record under its original id, modified now.

        Sandbox only, to test "deleted, then back": real Copper gives a recreated record a new
        id. Announced as a "new" record.
        """
        with self.lock:
            table = self._table(entity)
            if record_id in table.records:
                raise InvalidInput(f"{ENTITY_TYPE[entity]} {record_id} is not deleted")
            record = self._graveyard[entity].pop(record_id, None)
            if record is None:
                raise NotFound(f"no deleted {ENTITY_TYPE[entity]} {record_id} to restore")
            record = {**record, "date_modified": self.clock.now()}
            if entity != "activities":
                record["custom_fields"] = self._merge_custom_fields(
                    entity, record.get("custom_fields") or [], []
                )
            table.put(record)
            self._emit(entity, "new", record_id)
            return _copy(record)

    def convert_lead(self, lead_id: int, fields: dict | None = None) -> dict:
        """Mark a lead converted (plus `fields`): it leaves default lead searches, as in Copper.

        Only the mark; `convert.convert_lead` is the whole documented conversion. Copper
        removes a converted lead, so webhooks hear a lead "delete".
        """
        with self.lock:
            mark = {"converted_timestamp": self.clock.now(), **(fields or {})}
            lead = self.update("leads", lead_id, mark, notify=False)
            self._emit("leads", "delete", lead_id)
            return lead

    def add_activity(
        self,
        parent_type: str,
        parent_id: int,
        activity_date: int,
        *,
        type_id: int = 0,
        category: str = "user",
        details: str = "",
        user_id: int | None = None,
        old_value: Any = None,
        new_value: Any = None,
    ) -> dict:
        """Log an activity, possibly backdated or future-dated (activity_date is free)."""
        return self.create(
            "activities",
            {
                "parent": {"id": parent_id, "type": parent_type},
                "type": {"id": type_id, "category": category},
                "user_id": user_id if user_id is not None else self.users[0]["id"],
                "details": details,
                "activity_date": int(activity_date),
                "old_value": old_value,
                "new_value": new_value,
            },
        )

    def touch_random(self, entity: str, count: int, rng: random.Random) -> list[int]:
        """Concurrent users: bump date_modified of `count` random records of an entity."""
        with self.lock:
            table = self._table(entity)
            if not table.records:
                return []
            ids = rng.sample(list(table.records), min(count, len(table.records)))
            for record_id in ids:
                self.update(entity, record_id, {}, notify=True)
            return ids

    def delete_random(self, entity: str, count: int, rng: random.Random) -> list[int]:
        """Concurrent users: delete `count` random records of an entity (source "chaos")."""
        with self.lock:
            table = self._table(entity)
            ids = rng.sample(list(table.records), min(count, len(table.records)))
            for record_id in ids:
                self.delete(entity, record_id, source="chaos")
            return ids

    # -- custom field definitions ----------------------------------------------------------
    def add_custom_field(
        self,
        name: str,
        data_type: str,
        available_on: list[str],
        options: list[str] | None = None,
        currency: str | None = None,
    ) -> dict:
        if data_type not in DATA_TYPES:
            raise ValueError(f"unknown data_type {data_type!r}; one of {', '.join(DATA_TYPES)}")
        with self.lock:
            definition: dict[str, Any] = {
                "id": self._new_id("custom_field_definitions"),
                "name": name,
                "canonical_name": None,
                "data_type": data_type,
                "available_on": list(available_on),
                "is_filterable": True,
            }
            if data_type in ("Dropdown", "MultiSelect"):
                definition["options"] = [
                    {"id": self._new_id("options"), "name": label, "rank": rank}
                    for rank, label in enumerate(options or [])
                ]
            if data_type == "Currency":
                definition["currency"] = currency or "USD"
            self.definitions[definition["id"]] = definition
            self._refresh_custom_fields(definition["available_on"])
            return _copy(definition)

    def rename_custom_field(self, definition_id: int, name: str) -> dict:
        with self.lock:
            self._definition(definition_id)["name"] = name
            return _copy(self.definitions[definition_id])

    def delete_custom_field(self, definition_id: int) -> None:
        with self.lock:
            definition = self.definitions.pop(definition_id, None)
            if definition is None:
                raise NotFound(f"custom field definition {definition_id} not found")
            self._refresh_custom_fields(definition["available_on"])

    def add_option(self, definition_id: int, name: str) -> dict:
        with self.lock:
            options = self._definition(definition_id).setdefault("options", [])
            option = {"id": self._new_id("options"), "name": name, "rank": len(options)}
            options.append(option)
            return dict(option)

    def rename_option(self, definition_id: int, option_id: int, name: str) -> dict:
        with self.lock:
            option = self._option(definition_id, option_id)
            option["name"] = name
            return dict(option)

    def delete_option(self, definition_id: int, option_id: int) -> None:
        """Remove an option; records keep the stale id, as real payloads do."""
        with self.lock:
            definition = self._definition(definition_id)
            self._option(definition_id, option_id)
            definition["options"] = [o for o in definition["options"] if o["id"] != option_id]

    # -- internals -------------------------------------------------------------------------
    def _emit(self, entity: str, event: str, record_id: int, attrs: dict | None = None) -> None:
        """Tell every listener; a failing listener never fails the mutation."""
        if not self.listeners:
            return
        change = Change(entity, event, (record_id,), _copy(attrs) if event == "update" else None)
        for listener in list(self.listeners):
            try:
                listener(change)
            except Exception:
                log.exception("sandbox change listener failed on %s", change)

    def _table(self, entity: str) -> EntityTable:
        try:
            return self.tables[entity]
        except KeyError:
            raise NotFound(f"unknown entity {entity!r}") from None

    def _definition(self, definition_id: int) -> dict:
        try:
            return self.definitions[definition_id]
        except KeyError:
            raise NotFound(f"custom field definition {definition_id} not found") from None

    def _option(self, definition_id: int, option_id: int) -> dict:
        for option in self._definition(definition_id).get("options", []):
            if option["id"] == option_id:
                return option
        raise NotFound(f"option {option_id} of custom field {definition_id} not found")

    def new_id(self, kind: str) -> int:
        """The next id of a kind of object (an entity, "webhooks", ...)."""
        with self.lock:
            return self._new_id(kind)

    def _new_id(self, kind: str) -> int:
        self._next_ids[kind] = self._next_ids.get(kind, 1) + 1
        return self._next_ids[kind] - 1

    def _definitions_on(self, entity: str) -> list[int]:
        entity_type = ENTITY_TYPE[entity]
        return [d["id"] for d in self.definitions.values() if entity_type in d["available_on"]]

    def _merge_custom_fields(self, entity: str, old: list[dict], new: list[dict]) -> list[dict]:
        values = {cf["custom_field_definition_id"]: cf["value"] for cf in old}
        values.update({cf["custom_field_definition_id"]: cf.get("value") for cf in new})
        return [
            {"custom_field_definition_id": i, "value": values.get(i)}
            for i in self._definitions_on(entity)
        ]

    def _refresh_custom_fields(self, entity_types: list[str]) -> None:
        """Records list every definition available on them: add/drop entries in place.

        Copper does not bump date_modified when a definition changes, so neither do we.
        """
        for entity, entity_type in ENTITY_TYPE.items():
            if entity_type not in entity_types or entity == "activities":
                continue
            wanted = self._definitions_on(entity)
            for record in self.tables[entity].records.values():
                values = {
                    cf["custom_field_definition_id"]: cf["value"]
                    for cf in record.get("custom_fields") or []
                }
                record["custom_fields"] = [
                    {"custom_field_definition_id": i, "value": values.get(i)} for i in wanted
                ]


def _changed_attributes(old: dict, new: dict) -> dict:
    """{field: [old, new]} of what changed, custom fields per definition id, as webhooks say."""
    changed: dict[str, Any] = {}
    for key in old.keys() | new.keys():
        before, after = old.get(key), new.get(key)
        if key == "date_modified" or before == after:
            continue
        if key == "custom_fields":
            was = {cf["custom_field_definition_id"]: cf.get("value") for cf in before or []}
            now = {cf["custom_field_definition_id"]: cf.get("value") for cf in after or []}
            fields = {
                str(i): [was.get(i), now.get(i)]
                for i in sorted(was.keys() | now.keys())
                if was.get(i) != now.get(i)
            }
            if fields:
                changed[key] = fields
        else:
            changed[key] = [before, after]
    return dict(sorted(changed.items()))


def _is_converted(record: dict) -> bool:
    return record.get("converted_timestamp") is not None

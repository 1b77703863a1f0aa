"""Copper webhook subscriptions (POST/GET/PUT/DELETE /webhooks), kept on the account.

As documented: the target must be an https:// URL (else 422 "Invalid input: Invalid URI For
External Request"); type is one of lead, person, company, opportunity, project, task,
activity_log; event is new, update or delete; `secret` (key/value pairs merged into every
notification), `headers` (sent as HTTP headers) and `custom_field_computed_values` are
optional; an account holds at most 100 subscriptions. An update may change target, secret,
headers and custom_field_computed_values only (other fields are ignored).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from .account import InvalidInput, NotFound, SandboxAccount

MAX_SUBSCRIPTIONS = 100
WEBHOOK_TYPES = {
    "lead": "leads",
    "person": "people",
    "company": "companies",
    "opportunity": "opportunities",
    "project": "projects",
    "task": "tasks",
    "activity_log": "activities",
}
ENTITY_WEBHOOK_TYPE = {entity: type_ for type_, entity in WEBHOOK_TYPES.items()}
EVENTS = ("new", "update", "delete")
INVALID_TARGET = "Invalid input: Invalid URI For External Request"
_UPDATABLE = ("target", "secret", "headers", "custom_field_computed_values")


def create_subscription(account: SandboxAccount, body: dict) -> dict:
    """POST /webhooks: validate, store, return the subscription."""
    fields = _validated(body, ("target", "type", "event", *_UPDATABLE[1:]))
    for required in ("target", "type", "event"):
        if required not in fields:
            raise InvalidInput(f"Invalid input: {required} is required")
    with account.lock:
        if len(account.webhooks) >= MAX_SUBSCRIPTIONS:
            raise InvalidInput(
                f"Invalid input: an account may have at most {MAX_SUBSCRIPTIONS} active "
                "webhook subscriptions"
            )
        subscription = {
            "id": account.new_id("webhooks"),
            "target": fields["target"],
            "type": fields["type"],
            "event": fields["event"],
            "secret": fields.get("secret", {}),
            "headers": fields.get("headers", {}),
            "custom_field_computed_values": fields.get("custom_field_computed_values", False),
            "created_at": account.clock.now(),
        }
        account.webhooks.append(subscription)
        return dict(subscription)


def get_subscription(account: SandboxAccount, subscription_id: int) -> dict:
    with account.lock:
        for subscription in account.webhooks:
            if subscription["id"] == subscription_id:
                return subscription
    raise NotFound(f"webhook subscription {subscription_id} not found")


def update_subscription(account: SandboxAccount, subscription_id: int, body: dict) -> dict:
    """PUT /webhooks/{id}: change target, secret, headers, custom_field_computed_values."""
    fields = _validated({k: v for k, v in body.items() if k in _UPDATABLE}, _UPDATABLE)
    with account.lock:
        subscription = get_subscription(account, subscription_id)
        subscription.update(fields)
        return dict(subscription)


def delete_subscription(account: SandboxAccount, subscription_id: int) -> dict:
    """DELETE /webhooks/{id}: stop delivery; answers the removed subscription."""
    with account.lock:
        subscription = get_subscription(account, subscription_id)
        account.webhooks.remove(subscription)
        return subscription


def subscribers(account: SandboxAccount, entity: str, event: str) -> list[dict]:
    """Subscriptions that hear `event` on records of `entity`."""
    type_ = ENTITY_WEBHOOK_TYPE.get(entity)
    return [s for s in account.webhooks if s["type"] == type_ and s["event"] == event]


def computed_attributes(account: SandboxAccount, attributes: dict) -> dict:
    """updated_attributes with dropdown / multi-select option ids as their names."""
    fields = attributes.get("custom_fields")
    if not fields:
        return attributes
    with account.lock:
        names = {
            str(d["id"]): {o["id"]: o["name"] for o in d.get("options") or ()}
            for d in account.definitions.values()
            if d["data_type"] in ("Dropdown", "MultiSelect")
        }

    def label(definition: str, value: Any) -> Any:
        options = names.get(definition)
        if options is None or value is None:
            return value
        if isinstance(value, list):
            return [options.get(v, v) for v in value]
        return options.get(value, value)

    computed = {d: [label(d, v) for v in pair] for d, pair in fields.items()}
    return {**attributes, "custom_fields": computed}


def _validated(body: dict, allowed: tuple[str, ...]) -> dict:
    """The known fields of a subscription body, each checked as Copper documents it."""
    fields = {k: body[k] for k in allowed if k in body}
    if "target" in fields and not _https_url(fields["target"]):
        raise InvalidInput(INVALID_TARGET)
    if "type" in fields and fields["type"] not in WEBHOOK_TYPES:
        raise InvalidInput(f"Invalid input: type must be one of {', '.join(WEBHOOK_TYPES)}")
    if "event" in fields and fields["event"] not in EVENTS:
        raise InvalidInput(f"Invalid input: event must be one of {', '.join(EVENTS)}")
    for name in ("secret", "headers"):
        if name in fields:
            value = fields[name] if fields[name] is not None else {}
            if not isinstance(value, dict):
                raise InvalidInput(f"Invalid input: {name} must be an object")
            fields[name] = value
    headers = fields.get("headers") or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise InvalidInput("Invalid input: headers must map names to string values")
    computed = fields.get("custom_field_computed_values")
    if computed is not None and not isinstance(computed, bool):
        raise InvalidInput("Invalid input: custom_field_computed_values must be a boolean")
    if "custom_field_computed_values" in fields:
        fields["custom_field_computed_values"] = bool(computed)
    return fields


def _https_url(target: Any) -> bool:
    if not isinstance(target, str) or any(c.isspace() for c in target):
        return False
    try:
        parts = urlsplit(target)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return False
    return parts.scheme.lower() == "https" and bool(parts.hostname)

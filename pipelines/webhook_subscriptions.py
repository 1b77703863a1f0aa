"""Copper webhook subscriptions: `copper-pipeline webhooks subscribe|list|remove`.

Copper calls only https:// targets, allows 100 subscriptions per account, fires each
notification at most once and never retries it. A subscription is one (target, type, event);
its `secret` object comes back as top-level fields of every notification, which is how the
receiver (`pipelines/webhooks.py`) knows a notification is Copper's.

Endpoints: POST /webhooks {target, type, event, secret}, GET /webhooks, PUT /webhooks/{id},
DELETE /webhooks/{id}.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from copper import CopperClient

from .check import configured_client
from .runner import RunError
from .webhook_inbox import EVENTS, TYPES

MAX_SUBSCRIPTIONS = 100  # per Copper account
DEFAULT_EVENTS = ("update", "delete")
Log = Callable[[str], None]


def make_client() -> CopperClient:
    """A client with the source's credentials, as `copper-pipeline check` builds it."""
    return configured_client()[0]


def check_target(target: str) -> str:
    """Refuse anything but an absolute https:// URL, before Copper is called."""
    try:
        parts = urlsplit(target)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        parts, host = None, None
    if (
        parts is None
        or parts.scheme.lower() != "https"
        or not host
        or any(c.isspace() for c in target)
    ):
        raise RunError(
            f"bad --target {target!r}: Copper only calls https:// URLs "
            "(e.g. https://hooks.example.com/copper/webhooks)"
        )
    return target


def check_choices(values: Iterable[str], allowed: Sequence[str], option: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(v.strip() for v in values if v.strip()))
    unknown = [v for v in chosen if v not in allowed]
    if unknown or not chosen:
        raise RunError(
            f"bad {option} {','.join(unknown) or '(empty)'}: choose from {', '.join(allowed)}"
        )
    return chosen


def list_subscriptions(client: CopperClient) -> list[dict]:
    """Every webhook subscription of the account (GET /webhooks), by id."""
    data = client.get("/webhooks", context="webhooks")
    if not isinstance(data, list):
        raise RunError(f"Copper GET /webhooks returned {type(data).__name__}, expected a list")
    return sorted(data, key=lambda s: s.get("id") or 0)


def subscribe(
    client: CopperClient,
    target: str,
    secret_field: str,
    secret: str,
    events: Sequence[str] = DEFAULT_EVENTS,
    types: Sequence[str] = TYPES,
    log: Log | None = None,
) -> list[dict]:
    """Subscribe `target` to each (type, event); the subscriptions created or updated.

    Idempotent: an existing subscription with the same target, type and event is kept (its
    secret is updated when Copper shows a different one). Refuses, before creating any, an
    http:// target, unknown types or events, or more than Copper's 100 subscriptions."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    check_target(target)
    events = check_choices(events, EVENTS, "--events")
    types = check_choices(types, TYPES, "--types")
    if not secret_field or not secret:
        raise RunError("missing configuration: a webhook secret field and value are required")
    existing = list_subscriptions(client)
    by_key = {(s.get("target"), s.get("type"), s.get("event")): s for s in existing}
    wanted = [(t, e) for t in types for e in events]
    missing = [(t, e) for t, e in wanted if (target, t, e) not in by_key]
    if len(existing) + len(missing) > MAX_SUBSCRIPTIONS:
        raise RunError(
            f"too many webhook subscriptions: the account has {len(existing)} and this needs "
            f"{len(missing)} more, past Copper's limit of {MAX_SUBSCRIPTIONS}; remove some "
            "(`copper-pipeline webhooks list|remove`) or subscribe fewer --types/--events"
        )
    secret_body = {secret_field: secret}
    changed = []
    for type_, event in wanted:
        current = by_key.get((target, type_, event))
        if current is None:
            body = {"target": target, "type": type_, "event": event, "secret": secret_body}
            created = client.request("POST", "/webhooks", body, context=f"{type_} {event}")[0]
            log(f"subscribed {type_}.{event} (id {_id(created)})")
            changed.append(created)
        elif isinstance(current.get("secret"), dict) and (
            current["secret"].get(secret_field) != secret
        ):
            updated = client.request(
                "PUT", f"/webhooks/{current['id']}", {"secret": secret_body},
                context=f"{type_} {event}",
            )[0]  # fmt: skip
            log(f"updated the secret of {type_}.{event} (id {current['id']})")
            changed.append(updated)
        else:
            log(f"already subscribed: {type_}.{event} (id {current.get('id')})")
    return changed


def remove(
    client: CopperClient,
    target: str | None = None,
    ids: Sequence[int] | None = None,
    log: Log | None = None,
) -> list[dict]:
    """Delete the subscriptions of `target`, or those with `ids`; the subscriptions deleted.
    Unknown ids are refused before any is deleted."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    if not target and not ids:
        raise RunError("bad input: give --target URL or --id N")
    existing = list_subscriptions(client)
    if ids:
        known = {s.get("id"): s for s in existing}
        unknown = [str(i) for i in ids if i not in known]
        if unknown:
            raise RunError(f"unknown webhook subscription id {', '.join(unknown)}")
        doomed = [known[i] for i in dict.fromkeys(ids)]
    else:
        doomed = []
    if target:
        doomed += [s for s in existing if s.get("target") == target and s not in doomed]
    for subscription in doomed:
        client.request("DELETE", f"/webhooks/{subscription['id']}", context="remove")
        log(f"removed {describe(subscription)}")
    return doomed


def describe(subscription: dict) -> str:
    """One line, secret values hidden (only the secret's field names)."""
    secret = subscription.get("secret")
    fields = ",".join(sorted(secret)) if isinstance(secret, dict) and secret else "-"
    return (
        f"{_id(subscription)}  {subscription.get('type')}.{subscription.get('event')}  "
        f"{subscription.get('target')}  secret fields: {fields}"
    )


def table(subscriptions: list[dict]) -> str:
    """`webhooks list` output: one line per subscription, secrets hidden."""
    if not subscriptions:
        return "no webhook subscriptions"
    header = ("id", "type", "event", "target", "secret fields")
    rows = [
        (
            str(_id(s)), str(s.get("type")), str(s.get("event")), str(s.get("target")),
            ",".join(sorted(s["secret"])) if isinstance(s.get("secret"), dict) else "-",
        )
        for s in subscriptions
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in (header, *rows)]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"{len(subscriptions)} of {MAX_SUBSCRIPTIONS} subscriptions")
    return "\n".join(lines)


def _id(subscription: Any) -> Any:
    return subscription.get("id") if isinstance(subscription, dict) else None

"""The sandbox's HTTP face: Copper's Developer API v1 routes, plus admin routes under /_sandbox/.

API routes pass through one gate (`Sandbox.api`): authentication, the rolling rate limit,
latency and injected faults, then the handler. Admin routes need the admin token and are neither
rate limited nor counted against the account.

Records can be deleted (DELETE /{entity}/{id}) where Copper documents it: people, companies,
leads, opportunities and tasks; projects and activities only over the admin routes. Leads convert
(POST /leads/{id}/convert, see convert.py); webhook subscriptions live under /webhooks
(webhooks.py) and every record change is delivered to them (delivery.py). Call `close()` (the
servers in server.py do) to stop webhook delivery.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import webhooks
from .account import ENTITY_TYPE, InvalidInput, NotFound, SandboxAccount
from .chaos import Chaos, SandboxConfig
from .convert import convert_lead
from .delivery import Notifier
from .generator import ENTITIES
from .store import SearchError

API_PREFIX = "/developer_api/v1"
ADMIN_HEADER = "X-Sandbox-Admin-Token"
Handler = Callable[[Request], Awaitable[Response]]
DELETABLE = ("people", "companies", "leads", "opportunities", "tasks")  # Copper documents DELETE
UNAUTHENTICATED = "Invalid User Email / API Key / Application"  # Copper's 401 message
FORBIDDEN = "You do not have permission to perform this action"


def json_response(payload: Any, status: int = 200, headers: dict | None = None) -> Response:
    body = orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)
    return Response(body, status, headers, media_type="application/json")


def error(status: int, message: str, headers: dict | None = None) -> Response:
    return json_response({"success": False, "status": status, "message": message}, status, headers)


def garbled(body: bytes) -> bytes:
    """`body` whole, but no longer JSON: bytes flipped in the middle, as a broken proxy or a
    bad buffer would deliver it (same length, so only parsing tells)."""
    middle = len(body) // 2
    return body[:middle] + b"\x00}{\xff"[: max(1, len(body) - middle)] + body[middle + 4 :]


class CutResponse(Response):
    """A response that promises its whole body but sends half of it, then hangs up."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send(
            {
                "type": "http.response.body",
                "body": self.body[: len(self.body) // 2],
                "more_body": True,
            }
        )
        # returning without the rest makes the server drop the connection mid-body


class Stats:
    """Requests seen, per route and per status: tests and benchmarks count with it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.by_path: Counter[str] = Counter()
            self.by_status: Counter[str] = Counter()
            self.by_path_status: Counter[str] = Counter()
            self.records_served = 0

    def add(self, path: str, status: int, records: int = 0) -> None:
        with self._lock:
            self.by_path[path] += 1
            self.by_status[str(status)] += 1
            self.by_path_status[f"{path} {status}"] += 1
            self.records_served += records

    def as_dict(self) -> dict:
        with self._lock:
            return {
                "requests": sum(self.by_path.values()),
                "records_served": self.records_served,
                "by_path": dict(self.by_path),
                "by_status": dict(self.by_status),
                "by_path_status": dict(self.by_path_status),
            }


class Sandbox:
    """A simulated Copper account behind a real ASGI app."""

    def __init__(
        self,
        account: SandboxAccount,
        config: SandboxConfig | None = None,
        *,
        api_key: str = "sandbox-key",
        user_email: str = "admin@sandbox.example",
        access_tokens: tuple[str, ...] = ("sandbox-oauth-token",),
        admin_token: str | None = None,
    ) -> None:
        self.account = account
        self.config = config or SandboxConfig()
        self.chaos = Chaos(self.config)
        self.api_key = api_key
        self.user_email = user_email
        self.access_tokens = access_tokens
        self.admin_token = admin_token or secrets.token_urlsafe(16)
        self.stats = Stats()
        self.notifier = Notifier(account, self.config)
        self.app = self._build_app()

    def open(self) -> None:
        """(Re)start webhook delivery: servers call it before serving."""
        self.notifier.start()

    def close(self) -> None:
        """Stop webhook delivery (its threads) and stop hearing the account's changes."""
        self.notifier.close()

    # -- the gate every API request passes ---------------------------------------------------
    def api(self, method: str, path: str, handler: Handler) -> Route:
        label = f"{method} {path}"

        async def endpoint(request: Request) -> Response:
            response, records = await self._answer(request, handler)
            self.stats.add(label, response.status_code, records)
            return response

        return Route(API_PREFIX + path, endpoint, methods=[method])

    async def _answer(self, request: Request, handler: Handler) -> tuple[Response, int]:
        _, fault, delay = self.chaos.next_request()
        if fault == "401" or not self._authenticated(request):
            return error(401, UNAUTHENTICATED), 0
        if fault == "403":
            return error(403, FORBIDDEN), 0
        cfg = self.config
        if fault == "429":  # a storm: refused whatever the limiter says, and not counted
            wait: float | None = cfg.window_seconds / max(1, cfg.requests_per_window)
        else:
            wait = self.chaos.limiter.acquire(cfg.requests_per_window, cfg.window_seconds)
        if wait is not None:
            headers = {"Retry-After": str(math.ceil(wait))} if cfg.retry_after else None
            return error(429, "Rate limit exceeded", headers), 0
        if delay:
            await asyncio.sleep(delay)
        if fault in ("500", "502", "503"):
            return error(int(fault), "Injected server error"), 0
        if fault == "hang":
            await asyncio.sleep(self.config.hang_seconds)
        try:
            response = await handler(request)
        except ClientDisconnect:  # gone while the sandbox stalled (a hang): nobody to answer
            return Response(status_code=499), 0
        except NotFound as exc:
            return error(404, str(exc.args[0])), 0
        except (SearchError, InvalidInput) as exc:
            return error(422, str(exc)), 0
        except orjson.JSONDecodeError:
            return error(400, "Request body is not valid JSON"), 0
        records = getattr(request.state, "records", 0)
        if fault == "truncated":
            body = response.body[: max(1, len(response.body) // 2)]
            return Response(body, response.status_code, media_type="application/json"), records
        if fault == "reset":
            return CutResponse(response.body, response.status_code), 0
        if fault == "malformed":
            return Response(garbled(response.body), response.status_code,
                            media_type="application/json"), 0  # fmt: skip
        return response, records

    def _authenticated(self, request: Request) -> bool:
        h = request.headers
        bearer = h.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            return bearer[7:].strip() in self.access_tokens
        return (
            h.get("x-pw-accesstoken") == self.api_key
            and (h.get("x-pw-useremail") or "").lower() == self.user_email.lower()
            and h.get("x-pw-application") == "developer_api"
        )

    def _admin(self, handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            if request.headers.get(ADMIN_HEADER) != self.admin_token:
                return error(401, f"admin routes need the {ADMIN_HEADER} header")
            try:
                return await handler(request)
            except NotFound as exc:
                return error(404, str(exc.args[0]))
            except (ValueError, KeyError, TypeError) as exc:
                return error(422, str(exc))

        return endpoint

    # -- API handlers ------------------------------------------------------------------------
    async def search(self, request: Request) -> Response:
        entity = request.url.path.removeprefix(API_PREFIX + "/").split("/")[0]
        body = await _body(request)
        edits = self.chaos.edits_before_search()
        if edits:
            self.account.touch_random(entity, edits, self.chaos.rng)
        deletes = self.chaos.deletes_before_search()
        if deletes:
            self.account.delete_random(entity, deletes, self.chaos.rng)
        ignored = tuple(self.config.ignored_filters.get(entity, ()))
        page = self.account.search(entity, body, ignored)
        request.state.records = len(page.records)
        headers = {"X-PW-TOTAL": str(self.chaos.reported_total(page.total))}
        return json_response(page.records, headers=headers)

    async def get_record(self, request: Request) -> Response:
        entity = request.url.path.removeprefix(API_PREFIX + "/").split("/")[0]
        return json_response(self.account.get(entity, _int_param(request, "id")))

    async def delete_record(self, request: Request) -> Response:
        entity = request.url.path.removeprefix(API_PREFIX + "/").split("/")[0]
        return json_response(self.account.delete(entity, _int_param(request, "id"), "api"))

    async def convert(self, request: Request) -> Response:
        body = await _body(request)
        return json_response(convert_lead(self.account, _int_param(request, "id"), body))

    async def webhooks_list(self, _request: Request) -> Response:
        with self.account.lock:
            return json_response(self.account.webhooks)

    async def webhooks_create(self, request: Request) -> Response:
        return json_response(webhooks.create_subscription(self.account, await _body(request)))

    async def webhook(self, request: Request) -> Response:
        account, subscription_id = self.account, _int_param(request, "id")
        if request.method == "GET":
            return json_response(webhooks.get_subscription(account, subscription_id))
        if request.method == "PUT":
            body = await _body(request)
            return json_response(webhooks.update_subscription(account, subscription_id, body))
        return json_response(webhooks.delete_subscription(account, subscription_id))

    async def users_search(self, request: Request) -> Response:
        body = await _body(request)
        size = min(int(body.get("page_size") or 20), 200)
        start = (max(int(body.get("page_number") or 1), 1) - 1) * size
        users = self.account.users[start : start + size]
        return json_response(users, headers={"X-PW-TOTAL": str(len(self.account.users))})

    async def user(self, request: Request) -> Response:
        ident = request.path_params["id"]
        if ident == "me":
            email = request.headers.get("x-pw-useremail") or self.user_email
            found = self.account.user(email) or self.account.users[0]
        else:
            found = next((u for u in self.account.users if str(u["id"]) == ident), None)
        if found is None:
            raise NotFound(f"user {ident} not found")
        return json_response(found)

    async def custom_field_definition(self, request: Request) -> Response:
        definition = self.account.definitions.get(_int_param(request, "id"))
        if definition is None:
            raise NotFound("custom field definition not found")
        return json_response(definition)

    async def field_layout(self, request: Request) -> Response:
        entity = request.path_params["entity_type"]
        if entity not in ENTITY_TYPE or entity == "activities":
            raise NotFound(f"unknown entity type {entity!r}")
        if entity == "opportunities" and "pipeline_id" not in request.query_params:
            raise SearchError("pipeline_id is required for the opportunities field layout")
        static = [("name", "Name"), ("assignee", "Owner"), ("tags", "Tags")]
        fields = [
            _layout_field(i, label, key, "static_field") for i, (key, label) in enumerate(static)
        ]
        fields += [
            _layout_field(d["id"], d["name"], f"cf_{d['id']}", "custom_field")
            for d in self.account.custom_field_definitions()
            if ENTITY_TYPE[entity] in d["available_on"]
        ]
        return json_response(fields)

    def _static(self, getter: Callable[[], Any]) -> Handler:
        async def handler(_request: Request) -> Response:
            return json_response(getter())

        return handler

    # -- admin handlers ----------------------------------------------------------------------
    async def admin_stats(self, _request: Request) -> Response:
        with self.account.lock:
            deleted = {
                e: dict(Counter(d["source"] for d in rows))
                for e, rows in self.account.deletions.items()
                if rows
            }
        extra = {"webhooks": self.notifier.stats(), "deleted": deleted}
        return json_response(self.stats.as_dict() | extra)

    async def admin_stats_reset(self, _request: Request) -> Response:
        self.stats.reset()
        self.notifier.reset_stats()
        return json_response({"reset": True})

    async def admin_config(self, request: Request) -> Response:
        if request.method == "POST":
            changes = await _body(request)
            self.config.update(**changes)
            if "requests_per_window" in changes or "window_seconds" in changes:
                self.chaos.limiter.reset()
        return json_response(self.config.as_dict())

    async def admin_records(self, request: Request) -> Response:
        entity = request.path_params["entity"]
        if entity not in ENTITIES:
            raise NotFound(f"unknown entity {entity!r}")
        if request.method == "POST":
            body = await _body(request)
            explicit = body.pop("id", None)  # sandbox only: re-create under a chosen free id
            record_id = None if explicit is None else int(explicit)
            return json_response(self.account.create(entity, body, record_id))
        record_id = _int_param(request, "id")
        if request.method == "PUT":
            return json_response(self.account.update(entity, record_id, await _body(request)))
        return json_response(self.account.delete(entity, record_id))

    async def admin_restore(self, request: Request) -> Response:
        entity = request.path_params["entity"]
        return json_response(self.account.restore(entity, _int_param(request, "id")))

    async def admin_deleted(self, request: Request) -> Response:
        """Deletions so far: [{id, deleted_at, source}], `?source=chaos|api|admin` filters."""
        entity = request.path_params["entity"]
        if entity not in ENTITIES:
            raise NotFound(f"unknown entity {entity!r}")
        source = request.query_params.get("source")
        with self.account.lock:
            rows = list(self.account.deletions[entity])
        return json_response([r for r in rows if source is None or r["source"] == source])

    async def admin_notifications(self, _request: Request) -> Response:
        return json_response(self.notifier.notifications())

    async def admin_convert_lead(self, request: Request) -> Response:
        """Without a body: only mark the lead converted; with {"details": ...}: as Copper."""
        lead_id, body = _int_param(request, "id"), await _body(request)
        if "details" in body:
            return json_response(convert_lead(self.account, lead_id, body))
        return json_response(self.account.convert_lead(lead_id))

    async def admin_activity(self, request: Request) -> Response:
        body = await _body(request)
        parent = body.pop("parent")
        return json_response(
            self.account.add_activity(
                parent["type"], parent["id"], body.pop("activity_date"), **body
            )
        )

    async def admin_definitions(self, request: Request) -> Response:
        account = self.account
        if request.method == "POST":
            return json_response(account.add_custom_field(**(await _body(request))))
        definition_id = _int_param(request, "id")
        if request.method == "PUT":
            return json_response(
                account.rename_custom_field(definition_id, (await _body(request))["name"])
            )
        account.delete_custom_field(definition_id)
        return json_response({"id": definition_id, "is_deleted": True})

    async def admin_options(self, request: Request) -> Response:
        account, definition_id = self.account, _int_param(request, "id")
        if request.method == "POST":
            return json_response(account.add_option(definition_id, (await _body(request))["name"]))
        option_id = _int_param(request, "option_id")
        if request.method == "PUT":
            name = (await _body(request))["name"]
            return json_response(account.rename_option(definition_id, option_id, name))
        account.delete_option(definition_id, option_id)
        return json_response({"id": option_id, "is_deleted": True})

    async def admin_clock(self, request: Request) -> Response:
        if request.method == "POST":
            self.account.clock.advance(int((await _body(request)).get("advance", 0)))
        return json_response({"now": self.account.clock.now()})

    async def admin_snapshot(self, request: Request) -> Response:
        entity = request.path_params["entity"]
        if entity not in ENTITIES:
            raise NotFound(f"unknown entity {entity!r}")
        return json_response(self.account.snapshot(entity))

    # -- wiring ------------------------------------------------------------------------------
    def _build_app(self) -> Starlette:
        a = self.account
        routes = [self.api("POST", f"/{e}/search", self.search) for e in ENTITIES]
        routes += [self.api("GET", f"/{e}/{{id:int}}", self.get_record) for e in ENTITIES]
        routes += [self.api("DELETE", f"/{e}/{{id:int}}", self.delete_record) for e in DELETABLE]
        routes += [
            self.api("POST", "/leads/{id:int}/convert", self.convert),
            self.api("GET", "/webhooks", self.webhooks_list),
            self.api("POST", "/webhooks", self.webhooks_create),
            *(self.api(m, "/webhooks/{id:int}", self.webhook) for m in ("GET", "PUT", "DELETE")),
            self.api("POST", "/users/search", self.users_search),
            self.api("GET", "/users/{id}", self.user),
            self.api("GET", "/custom_field_definitions/{id:int}", self.custom_field_definition),
            self.api("GET", "/field_layouts/by_entity/{entity_type}", self.field_layout),
        ]
        static: dict[str, Callable[[], Any]] = {
            "/account": lambda: a.account,
            "/custom_field_definitions": a.custom_field_definitions,
            "/pipelines": lambda: a.pipelines,
            "/pipeline_stages": a.pipeline_stages,
            "/lead_statuses": lambda: a.lead_statuses,
            "/customer_sources": lambda: a.customer_sources,
            "/loss_reasons": lambda: a.loss_reasons,
            "/contact_types": lambda: a.contact_types,
            "/activity_types": lambda: a.activity_types,
            "/tags": a.tags,
        }
        routes += [self.api("GET", path, self._static(get)) for path, get in static.items()]
        admin = [
            ("/config", self.admin_config, ["GET", "POST"]),
            ("/stats/reset", self.admin_stats_reset, ["POST"]),
            ("/records/{entity}", self.admin_records, ["POST"]),
            ("/records/{entity}/{id:int}", self.admin_records, ["PUT", "DELETE"]),
            ("/records/{entity}/{id:int}/restore", self.admin_restore, ["POST"]),
            ("/deleted/{entity}", self.admin_deleted, ["GET"]),
            ("/webhooks/notifications", self.admin_notifications, ["GET"]),
            ("/leads/{id:int}/convert", self.admin_convert_lead, ["POST"]),
            ("/activities", self.admin_activity, ["POST"]),
            ("/custom_field_definitions", self.admin_definitions, ["POST"]),
            ("/custom_field_definitions/{id:int}", self.admin_definitions, ["PUT", "DELETE"]),
            ("/custom_field_definitions/{id:int}/options", self.admin_options, ["POST"]),
            (
                "/custom_field_definitions/{id:int}/options/{option_id:int}",
                self.admin_options,
                ["PUT", "DELETE"],
            ),
            ("/clock", self.admin_clock, ["GET", "POST"]),
            ("/snapshot/{entity}", self.admin_snapshot, ["GET"]),
        ]
        routes += [Route("/_sandbox/stats", self.admin_stats, methods=["GET"])]
        routes += [Route("/_sandbox" + p, self._admin(h), methods=m) for p, h, m in admin]
        return Starlette(routes=routes)


async def _body(request: Request) -> dict:
    raw = await request.body()
    if not raw.strip():
        return {}
    body = orjson.loads(raw)
    if not isinstance(body, dict):
        raise SearchError("request body must be a JSON object")
    return body


def _int_param(request: Request, name: str) -> int:
    return int(request.path_params[name])


def _layout_field(field_id: int, label: str, key: str, kind: str) -> dict:
    return {
        "field_id": field_id,
        "field_label": label,
        "field_key": key,
        "field_type": kind,
        "enabled": True,
        "required": False,
        "required_editable": False,
    }

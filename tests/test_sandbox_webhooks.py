"""Webhook subscriptions and their delivery to a real HTTPS receiver (self-signed, trustme)."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import trustme

from copper_sandbox.webhooks import INVALID_TARGET

from .conftest import copper_headers


@dataclass
class Receiver:
    """An HTTPS endpoint that records every notification it is sent."""

    url: str
    ca_file: str
    status: int = 200
    delay: float = 0.0
    received: list[dict] = field(default_factory=list)

    def wait_for(self, done: Callable[[list[dict]], bool], timeout: float = 10) -> list[dict]:
        deadline = time.monotonic() + timeout
        while not done(self.received) and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.received)

    def ids(self) -> list[int]:
        return [i for n in self.received for i in n["body"]["ids"]]


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> tuple[trustme.CA, str]:
    ca = trustme.CA()
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return ca, str(ca_file)


@pytest.fixture
def receiver(tls) -> Iterator[Receiver]:
    ca, ca_file = tls
    state = Receiver("", ca_file)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(state.delay)
            state.received.append({"body": body, "headers": dict(self.headers)})
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"https://localhost:{server.server_address[1]}/copper"
    yield state
    server.shutdown()
    server.server_close()


def client_for(running) -> httpx.Client:
    return httpx.Client(base_url=running.base_url, headers=copper_headers(running), timeout=30)


def subscribe(client: httpx.Client, **fields) -> dict:
    r = client.post("/webhooks", json=fields)
    assert r.status_code == 200, r.text
    return r.json()


# -- subscriptions ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "target", ["http://hooks.example.com/x", "not a url", "https://", "ftp://x.example", 7, None]
)
def test_only_https_targets(api, target):
    client, _ = api
    r = client.post("/webhooks", json={"target": target, "type": "person", "event": "new"})
    assert r.status_code == 422
    assert r.json() == {"success": False, "status": 422, "message": INVALID_TARGET}


@pytest.mark.parametrize(
    "change", [{"type": "people"}, {"type": "activity"}, {"event": "create"}, {"secret": "s"}]
)
def test_type_event_and_secret_are_validated(api, change):
    client, _ = api
    body = {"target": "https://hooks.example.com", "type": "person", "event": "new"} | change
    assert client.post("/webhooks", json=body).status_code == 422
    assert client.get("/webhooks").json() == []


def test_list_get_update_delete(api):
    client, _ = api
    made = subscribe(
        client,
        target="https://hooks.example.com/a",
        type="activity_log",
        event="update",
        secret={"secret": "hook_source", "key": "copper_notifications"},
        headers={"Authentication": "Bearer token"},
        custom_field_computed_values=True,
    )
    assert made["type"] == "activity_log" and made["created_at"] > 0
    assert made["secret"] == {"secret": "hook_source", "key": "copper_notifications"}
    assert client.get("/webhooks").json() == [made]
    assert client.get(f"/webhooks/{made['id']}").json() == made
    r = client.put(
        f"/webhooks/{made['id']}",
        json={"target": "https://hooks.example.com/b", "secret": {"k": "v"}, "type": "lead"},
    )
    updated = r.json()
    assert updated["target"] == "https://hooks.example.com/b" and updated["secret"] == {"k": "v"}
    assert updated["type"] == "activity_log"  # only target, secret, headers, computed values
    assert updated["headers"] == made["headers"]
    bad = client.put(f"/webhooks/{made['id']}", json={"target": "http://plain.example"})
    assert bad.status_code == 422 and bad.json()["message"] == INVALID_TARGET
    assert client.delete(f"/webhooks/{made['id']}").json()["id"] == made["id"]
    assert client.get(f"/webhooks/{made['id']}").status_code == 404
    assert client.delete(f"/webhooks/{made['id']}").status_code == 404
    assert client.put("/webhooks/999999", json={}).status_code == 404
    assert client.get("/webhooks").json() == []


def test_at_most_100_subscriptions(api):
    client, _ = api
    made = [
        subscribe(client, target=f"https://hooks.example.com/{k}", type="task", event="new")
        for k in range(100)
    ]
    assert len({m["id"] for m in made}) == 100
    refused = client.post(
        "/webhooks", json={"target": "https://hooks.example.com/x", "type": "task", "event": "new"}
    )
    assert refused.status_code == 422 and "100" in refused.json()["message"]
    client.delete(f"/webhooks/{made[0]['id']}")
    subscribe(client, target="https://hooks.example.com/y", type="task", event="new")
    assert len(client.get("/webhooks").json()) == 100


def test_webhook_routes_pass_the_gate(api):
    _, running = api
    assert httpx.get(f"{running.base_url}/webhooks").status_code == 401


# -- delivery ---------------------------------------------------------------------------------
def test_new_records_arrive_batched_with_secret_and_headers(serve, receiver):
    with (
        serve(webhook_drop_rate=0.0, webhook_ca_file=receiver.ca_file) as running,
        client_for(running) as client,
    ):
        account = running.sandbox.account
        sub = subscribe(
            client,
            target=receiver.url,
            type="person",
            event="new",
            secret={"secret": "hook_source", "key": "copper_notifications"},
            headers={"X-Copper-Test": "yes"},
        )
        subscribe(client, target=receiver.url, type="company", event="new")  # not hearing people
        created = [account.create("people", {"name": f"P {k}"})["id"] for k in range(45)]
        got = receiver.wait_for(lambda r: sum(len(n["body"]["ids"]) for n in r) >= 45)
        time.sleep(0.7)  # nothing more comes
        assert len(receiver.received) == len(got)
        assert sorted(receiver.ids()) == sorted(created)
        assert len(got) >= 2 and all(1 <= len(n["body"]["ids"]) <= 30 for n in got)
        for notification in got:
            body = notification["body"]
            assert body["type"] == "person" and body["event"] == "new"
            assert body["subscription_id"] == sub["id"]
            assert body["secret"] == "hook_source" and body["key"] == "copper_notifications"
            assert "updated_attributes" not in body
            assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None
            assert notification["headers"]["X-Copper-Test"] == "yes"
        stats = running.stats()["webhooks"]
        assert stats["sent"] == len(got) and stats["dropped"] == stats["failed"] == 0


def test_updates_carry_updated_attributes_computed_on_request(serve, receiver):
    with (
        serve(webhook_drop_rate=0.0, webhook_ca_file=receiver.ca_file) as running,
        client_for(running) as client,
    ):
        account = running.sandbox.account
        field = account.add_custom_field("Tier", "Dropdown", ["person"], ["Gold", "Silver"])
        gold, silver = (o["id"] for o in field["options"])
        person = account.snapshot("people")[0]
        account.update("people", person["id"], {"custom_fields": [_cf(field, gold)]})
        raw = subscribe(client, target=receiver.url, type="person", event="update")
        named = subscribe(
            client,
            target=receiver.url,
            type="person",
            event="update",
            custom_field_computed_values=True,
        )
        account.update(
            "people", person["id"], {"title": "CTO", "custom_fields": [_cf(field, silver)]}
        )
        account.update("people", person["id"], {})  # nothing changed: no notification
        got = receiver.wait_for(lambda r: len(r) >= 2)
        time.sleep(0.7)
        assert len(receiver.received) == 2
        by_sub = {n["body"]["subscription_id"]: n["body"] for n in got}
        key = str(field["id"])
        assert by_sub[raw["id"]]["updated_attributes"] == {
            "custom_fields": {key: [gold, silver]},
            "title": [person["title"], "CTO"],
        }
        assert by_sub[named["id"]]["updated_attributes"]["custom_fields"] == {
            key: ["Gold", "Silver"]
        }
        assert by_sub[raw["id"]]["ids"] == [person["id"]]


def test_deletes_and_conversions_are_heard(serve, receiver):
    with (
        serve(webhook_drop_rate=0.0, webhook_ca_file=receiver.ca_file) as running,
        client_for(running) as client,
    ):
        account = running.sandbox.account
        for type_, event in [("opportunity", "delete"), ("lead", "delete"), ("person", "new")]:
            subscribe(client, target=receiver.url, type=type_, event=event)
        opportunity = account.snapshot("opportunities")[0]
        assert client.delete(f"/opportunities/{opportunity['id']}").status_code == 200
        lead = next(x for x in account.snapshot("leads") if not x["converted_timestamp"])
        person = client.post(f"/leads/{lead['id']}/convert", json={}).json()["person"]
        got = receiver.wait_for(lambda r: len(r) >= 3)
        heard = {(n["body"]["type"], n["body"]["event"], tuple(n["body"]["ids"])) for n in got}
        assert heard == {
            ("opportunity", "delete", (opportunity["id"],)),
            ("lead", "delete", (lead["id"],)),
            ("person", "new", (person["id"],)),
        }


def test_chaos_changes_are_heard_too(serve, receiver):
    with (
        serve(
            webhook_drop_rate=0.0, webhook_ca_file=receiver.ca_file, chaos_deletes=3, seed=5
        ) as running,
        client_for(running) as client,
    ):
        subscribe(client, target=receiver.url, type="task", event="delete")
        client.post("/tasks/search", json={"page_size": 5})
        chaos = [d["id"] for d in running.admin("GET", "/deleted/tasks?source=chaos")]
        receiver.wait_for(lambda r: len(receiver.ids()) >= 3)
        assert sorted(receiver.ids()) == sorted(chaos) and len(chaos) == 3


def test_drop_rate_one_delivers_nothing(serve, receiver):
    with (
        serve(webhook_drop_rate=1.0, webhook_ca_file=receiver.ca_file) as running,
        client_for(running) as client,
    ):
        subscribe(client, target=receiver.url, type="company", event="new")
        for k in range(5):
            running.admin("POST", "/records/companies", {"name": f"C {k}"})
        deadline = time.monotonic() + 5
        while running.stats()["webhooks"]["dropped"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        stats = running.stats()["webhooks"]
    assert receiver.received == []
    assert stats["dropped"] >= 1 and stats["sent"] == 0


def test_failed_deliveries_are_lost_and_never_retried(serve, receiver):
    receiver.status = 500
    with (
        serve(webhook_drop_rate=0.0, webhook_ca_file=receiver.ca_file) as running,
        client_for(running) as client,
    ):
        subscribe(client, target=receiver.url, type="task", event="new")
        refused = "https://127.0.0.1:1/nothing-listens-here"
        subscribe(client, target=refused, type="task", event="new")
        running.admin("POST", "/records/tasks", {"name": "t"})
        receiver.wait_for(lambda r: len(r) >= 1)
        deadline = time.monotonic() + 10
        while running.stats()["webhooks"]["failed"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.7)
        assert len(receiver.received) == 1  # answered 500 once, never retried
        assert running.stats()["webhooks"]["failed"] == 2
        outcomes = {
            (n["status"], n["outcome"]) for n in running.admin("GET", "/webhooks/notifications")
        }
        assert (500, "failed") in outcomes and (None, "failed") in outcomes
        assert client.get("/account").status_code == 200  # the sandbox carries on


def test_an_untrusted_certificate_fails_delivery(serve, receiver):
    with serve(webhook_drop_rate=0.0) as running, client_for(running) as client:
        subscribe(client, target=receiver.url, type="task", event="new")
        running.admin("POST", "/records/tasks", {"name": "t"})
        deadline = time.monotonic() + 10
        while running.stats()["webhooks"]["failed"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        errors = [n["error"] for n in running.admin("GET", "/webhooks/notifications")]
    assert receiver.received == [] and errors and "SSL" in errors[0].upper()


def test_a_slow_receiver_never_blocks_mutations_and_delivery_stops_with_the_server(serve, receiver):
    receiver.delay = 1.0
    with (
        serve(
            webhook_drop_rate=0.0, webhook_ca_file=receiver.ca_file, webhook_batch_seconds=0
        ) as running,
        client_for(running) as client,
    ):
        account = running.sandbox.account
        subscribe(client, target=receiver.url, type="project", event="new")
        started = time.monotonic()
        for k in range(40):
            account.create("projects", {"name": f"Pr {k}"})
        assert time.monotonic() - started < 0.5
        assert _webhook_threads()
    assert _wait(lambda: not _webhook_threads(), 5)


def test_unsubscribed_hears_nothing_more(serve, receiver):
    with (
        serve(webhook_drop_rate=0.0, webhook_ca_file=receiver.ca_file) as running,
        client_for(running) as client,
    ):
        sub = subscribe(client, target=receiver.url, type="company", event="new")
        running.admin("POST", "/records/companies", {"name": "first"})
        receiver.wait_for(lambda r: len(r) >= 1)
        client.delete(f"/webhooks/{sub['id']}")
        running.admin("POST", "/records/companies", {"name": "second"})
        time.sleep(1.0)
        assert len(receiver.received) == 1


def _cf(definition: dict, value: int) -> dict:
    return {"custom_field_definition_id": definition["id"], "value": value}


def _webhook_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("copper-webhooks")]


def _wait(done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)
    return done()

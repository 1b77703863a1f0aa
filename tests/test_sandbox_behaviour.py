"""The sandbox's hostile side and its admin API: auth, rate limit, faults, mutations, stats."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from copper_sandbox import ADMIN_HEADER, SandboxAccount
from copper_sandbox.generator import generate_account

from .conftest import copper_headers


def client_for(running, headers=None, timeout=30.0) -> httpx.Client:
    headers = copper_headers(running) if headers is None else headers
    return httpx.Client(base_url=running.base_url, headers=headers, timeout=timeout)


# -- authentication ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change",
    [
        {"X-PW-AccessToken": "wrong"},
        {"X-PW-UserEmail": "someone@else.example"},
        {"X-PW-Application": "not_developer_api"},
    ],
)
def test_bad_credentials_get_a_401_json_error(api, change):
    client, _ = api
    r = client.post("/people/search", json={}, headers=change)
    assert r.status_code == 401
    assert r.json()["status"] == 401 and r.json()["message"]


def test_missing_headers_and_bearer_tokens(serve):
    with serve() as running:
        assert client_for(running, headers={}).get("/account").status_code == 401
        bearer = client_for(running, headers={"Authorization": "Bearer sandbox-oauth-token"})
        assert bearer.get("/account").status_code == 200
        wrong = client_for(running, headers={"Authorization": "Bearer nope"})
        assert wrong.get("/account").status_code == 401


# -- rate limit -------------------------------------------------------------------------------
@pytest.mark.parametrize("retry_after", [False, True])
def test_rolling_window_rate_limit(serve, retry_after):
    with serve(requests_per_window=5, window_seconds=1.5, retry_after=retry_after) as running:
        client = client_for(running)
        statuses = [client.get("/account").status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        refused = client.get("/account")
        assert refused.status_code == 429
        assert ("Retry-After" in refused.headers) is retry_after
        if retry_after:
            assert 1 <= int(refused.headers["Retry-After"]) <= 2
        time.sleep(1.6)
        assert client.get("/account").status_code == 200
        assert running.stats()["by_status"] == {"200": 6, "429": 2}


# -- faults and latency -----------------------------------------------------------------------
def test_scripted_server_errors_hit_exactly_the_kth_request(serve):
    with serve(scripted_faults={2: "503", 4: "500", 5: "502"}) as running:
        client = client_for(running)
        statuses = [client.get("/account").status_code for _ in range(6)]
    assert statuses == [200, 503, 200, 500, 502, 200]


def test_truncated_json_and_connection_reset(serve):
    with serve(scripted_faults={1: "truncated", 2: "reset"}) as running:
        client = client_for(running)
        r = client.post("/people/search", json={"page_size": 50})
        assert r.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.content)
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/people/search", json={"page_size": 50})
        assert len(client.post("/people/search", json={"page_size": 50}).json()) == 50


def test_hang_outlasts_a_client_timeout(serve):
    with serve(scripted_faults={1: "hang"}, hang_seconds=3) as running:
        client = client_for(running, timeout=0.5)
        with pytest.raises(httpx.ReadTimeout):
            client.get("/account")
        assert client.get("/account").status_code == 200


def test_probabilistic_faults_and_latency(serve):
    with serve(faults={"503": 0.5}, latency=0.05, jitter=0.02, seed=11) as running:
        client = client_for(running)
        started = time.monotonic()
        statuses = [client.get("/account").status_code for _ in range(20)]
        elapsed = time.monotonic() - started
    assert 3 <= statuses.count(503) <= 17 and statuses.count(200) >= 3
    assert elapsed >= 20 * 0.03


# -- mutations --------------------------------------------------------------------------------
def test_update_bumps_date_modified_to_the_clock_and_is_found_by_it(api):
    client, running = api
    account = running.sandbox.account
    account.clock.advance(3600)
    person = account.snapshot("people")[0]
    updated = account.update("people", person["id"], {"title": "Chief Tester"})
    assert updated["date_modified"] == account.clock.now()
    got = client.post(
        "/people/search", json={"minimum_modified_date": updated["date_modified"]}
    ).json()
    assert [r["id"] for r in got] == [person["id"]] and got[0]["title"] == "Chief Tester"


def test_create_and_delete_over_the_admin_api(api):
    client, running = api
    created = running.admin("POST", "/records/companies", {"name": "Initech"})
    assert client.get(f"/companies/{created['id']}").json()["name"] == "Initech"
    running.admin("DELETE", f"/records/companies/{created['id']}")
    assert client.get(f"/companies/{created['id']}").status_code == 404
    assert created["id"] not in {c["id"] for c in running.sandbox.account.snapshot("companies")}


def test_admin_routes_need_the_token(api):
    _, running = api
    r = httpx.post(f"{running.root_url}/_sandbox/records/people", json={"name": "x"})
    assert r.status_code == 401
    r = httpx.post(
        f"{running.root_url}/_sandbox/clock", json={"advance": 5}, headers={ADMIN_HEADER: "bad"}
    )
    assert r.status_code == 401


def test_custom_field_definitions_change_and_records_follow(api):
    client, running = api
    field = running.admin(
        "POST",
        "/custom_field_definitions",
        {"name": "Tier", "data_type": "Dropdown", "available_on": ["person"], "options": ["Gold"]},
    )
    gold = field["options"][0]["id"]
    silver = running.admin(
        "POST", f"/custom_field_definitions/{field['id']}/options", {"name": "Silver"}
    )
    running.admin("PUT", f"/custom_field_definitions/{field['id']}", {"name": "Customer Tier"})
    running.admin("PUT", f"/custom_field_definitions/{field['id']}/options/{gold}", {"name": "Au"})
    definitions = {d["id"]: d for d in client.get("/custom_field_definitions").json()}
    assert definitions[field["id"]]["name"] == "Customer Tier"
    labels = {o["id"]: o["name"] for o in definitions[field["id"]]["options"]}
    assert labels == {gold: "Au", silver["id"]: "Silver"}

    person = client.post("/people/search", json={"page_size": 1}).json()[0]
    entry = {"custom_field_definition_id": field["id"], "value": silver["id"]}
    assert {"custom_field_definition_id": field["id"], "value": None} in person["custom_fields"]
    running.admin("PUT", f"/records/people/{person['id']}", {"custom_fields": [entry]})
    updated = client.get(f"/people/{person['id']}").json()
    assert entry in updated["custom_fields"]

    running.admin("DELETE", f"/custom_field_definitions/{field['id']}/options/{silver['id']}")
    assert entry in client.get(f"/people/{person['id']}").json()["custom_fields"]  # stale id kept
    running.admin("DELETE", f"/custom_field_definitions/{field['id']}")
    after = client.get(f"/people/{person['id']}").json()
    assert field["id"] not in {cf["custom_field_definition_id"] for cf in after["custom_fields"]}
    assert after["date_modified"] == updated["date_modified"]  # as in Copper: no bump


def test_backdated_activity_and_clock(api):
    client, running = api
    before = running.admin("GET", "/clock")["now"]
    after = running.admin("POST", "/clock", {"advance": 86_400})["now"]
    assert after - before >= 86_400
    opportunity = client.post("/opportunities/search", json={"page_size": 1}).json()[0]
    backdated = after - 90 * 86_400
    activity = running.admin(
        "POST",
        "/activities",
        {"parent": {"type": "opportunity", "id": opportunity["id"]}, "activity_date": backdated},
    )
    assert activity["activity_date"] == backdated and activity["date_modified"] >= after
    got = client.post(
        "/activities/search",
        json={"minimum_activity_date": backdated, "maximum_activity_date": backdated},
    ).json()
    assert activity["id"] in {a["id"] for a in got}


def test_converted_leads_hide_unless_asked_for(api):
    client, running = api
    lead = client.post("/leads/search", json={"page_size": 1}).json()[0]
    running.admin("POST", f"/leads/{lead['id']}/convert")
    default = client.post("/leads/search", json={"ids": [lead["id"]]}).json()
    included = client.post(
        "/leads/search", json={"ids": [lead["id"]], "include_converted_leads": True}
    ).json()
    assert default == [] and included[0]["converted_timestamp"] is not None


def test_chaos_edits_records_between_requests(serve):
    with serve(chaos_edits=3, seed=4) as running:
        client = client_for(running)
        before = {r["id"]: r["date_modified"] for r in running.sandbox.account.snapshot("people")}
        running.sandbox.account.clock.advance(10)
        for page in range(1, 4):
            client.post("/people/search", json={"page_number": page, "page_size": 10})
        after = running.sandbox.account.snapshot("people")
    changed = [r for r in after if r["date_modified"] != before[r["id"]]]
    assert 3 <= len(changed) <= 9


def test_stats_count_requests_per_path_and_status(api):
    client, running = api
    client.post("/people/search", json={})
    client.post("/people/search", json={"page_size": 999})
    client.get("/account")
    stats = running.stats()
    assert stats["by_path"]["POST /people/search"] == 2
    assert stats["by_path_status"]["POST /people/search 422"] == 1
    assert stats["by_path"]["GET /account"] == 1
    running.admin("POST", "/stats/reset")
    assert running.stats()["requests"] == 0


def test_config_can_change_at_run_time(api):
    client, running = api
    running.admin("POST", "/config", {"scripted_faults": {"2": "500"}})
    statuses = [client.get("/account").status_code for _ in range(2)]
    assert statuses[1] == 500 or statuses[0] == 500
    with pytest.raises(httpx.HTTPStatusError):
        running.admin("POST", "/config", {"no_such_knob": 1})


# -- data -------------------------------------------------------------------------------------
def test_the_seed_determines_the_data():
    a, b, c = (generate_account(seed=s, scale=0.05) for s in (3, 3, 4))
    assert a == b
    assert a.records != c.records


def test_reference_endpoints(api):
    client, running = api
    account = running.sandbox.account
    assert client.get("/account").json()["id"] == account.account["id"]
    me = client.get("/users/me").json()
    assert me["email"] and "groups" in me
    users = client.post("/users/search", json={"page_size": 200}).json()
    assert len(users) == len(account.users)
    stages = client.get("/pipeline_stages").json()
    pipelines = client.get("/pipelines").json()
    assert {s["id"] for s in stages} == {s["id"] for p in pipelines for s in p["stages"]}
    types = client.get("/activity_types").json()
    assert set(types) == {"user", "system"}
    for path in ("/lead_statuses", "/customer_sources", "/loss_reasons", "/contact_types"):
        rows = client.get(path).json()
        assert rows and all({"id", "name"} <= set(r) for r in rows)
    tags = client.get("/tags").json()
    assert tags and all("count_people" in t for t in tags)
    assert client.get("/webhooks").json() == []
    assert client.get("/field_layouts/by_entity/people").json()[0]["field_type"] == "static_field"
    assert client.get("/field_layouts/by_entity/opportunities").status_code == 422


def test_every_data_type_of_custom_field_is_present():
    account = SandboxAccount.generate(seed=0, scale=0.02)
    types = {d["data_type"] for d in account.custom_field_definitions()}
    assert types == {
        "String", "Text", "Dropdown", "MultiSelect", "Date", "Checkbox",
        "Float", "URL", "Percentage", "Currency", "Connect",
    }  # fmt: skip

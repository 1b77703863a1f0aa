"""Deleting, converting and re-creating records in the sandbox, over real HTTP."""

from __future__ import annotations

import httpx
import pytest

from copper_sandbox import SandboxAccount

from .conftest import copper_headers

DELETABLE = ("people", "companies", "leads", "opportunities", "tasks")


def client_for(running) -> httpx.Client:
    return httpx.Client(base_url=running.base_url, headers=copper_headers(running), timeout=30)


def found(client: httpx.Client, entity: str, record_id: int) -> bool:
    body = {"ids": [record_id], "include_converted_leads": True}
    return record_id in {r["id"] for r in client.post(f"/{entity}/search", json=body).json()}


# -- DELETE /{entity}/{id} --------------------------------------------------------------------
@pytest.mark.parametrize("entity", DELETABLE)
def test_delete_over_the_api(api, entity):
    client, running = api
    record = running.sandbox.account.snapshot(entity)[0]
    assert found(client, entity, record["id"])
    r = client.delete(f"/{entity}/{record['id']}")
    assert r.status_code == 200 and r.json() == {"id": record["id"], "is_deleted": True}
    assert not found(client, entity, record["id"])
    assert client.get(f"/{entity}/{record['id']}").status_code == 404
    again = client.delete(f"/{entity}/{record['id']}")
    assert again.status_code == 404 and again.json()["status"] == 404
    assert running.stats()["by_path_status"][f"DELETE /{entity}/{{id:int}} 200"] == 1
    deleted = running.admin("GET", f"/deleted/{entity}")
    assert [(d["id"], d["source"]) for d in deleted] == [(record["id"], "api")]


@pytest.mark.parametrize("entity", ["projects", "activities"])
def test_copper_documents_no_delete_for_projects_and_activities(api, entity):
    client, running = api
    record = running.sandbox.account.snapshot(entity)[0]
    assert client.delete(f"/{entity}/{record['id']}").status_code == 405
    running.admin("DELETE", f"/records/{entity}/{record['id']}")  # the admin route still can
    assert client.get(f"/{entity}/{record['id']}").status_code == 404


def test_delete_goes_through_the_gate(serve):
    with serve(scripted_faults={2: "503"}) as running, client_for(running) as client:
        person = running.sandbox.account.snapshot("people")[0]
        unauthenticated = httpx.delete(f"{running.base_url}/people/{person['id']}")
        assert unauthenticated.status_code == 401
        assert client.delete(f"/people/{person['id']}").status_code == 503
        assert client.get(f"/people/{person['id']}").status_code == 200  # not deleted
        assert client.delete(f"/people/{person['id']}").status_code == 200


# -- POST /leads/{id}/convert -----------------------------------------------------------------
def test_convert_creates_a_person_company_and_opportunity(api):
    client, running = api
    account = running.sandbox.account
    lead = next(x for x in account.snapshot("leads") if not x["converted_timestamp"])
    pipeline = account.pipelines[0]
    details = {
        "person": {"name": "John Doe"},
        "company": {"name": "Brand New Co"},
        "opportunity": {
            "name": "Demo Project",
            "pipeline_id": pipeline["id"],
            "monetary_value": 1000,
        },
    }
    r = client.post(f"/leads/{lead['id']}/convert", json={"details": details})
    assert r.status_code == 200, r.text
    person, company, opportunity = (r.json()[k] for k in ("person", "company", "opportunity"))
    assert person["name"] == "John Doe" and person["last_name"] == "Doe"
    assert client.get(f"/people/{person['id']}").json()["company_id"] == company["id"]
    assert company["name"] == "Brand New Co"
    assert opportunity["primary_contact_id"] == person["id"]
    assert opportunity["pipeline_stage_id"] == pipeline["stages"][0]["id"]  # the first stage
    assert opportunity["monetary_value"] == 1000 and opportunity["company_id"] == company["id"]
    assert opportunity["leads_converted_from"][0]["lead_id"] == lead["id"]
    assert client.post("/leads/search", json={"ids": [lead["id"]]}).json() == []
    converted = client.post(
        "/leads/search", json={"ids": [lead["id"]], "include_converted_leads": True}
    ).json()[0]
    assert (
        converted["converted_timestamp"]
        and converted["converted_opportunity_id"] == (opportunity["id"])
    )
    again = client.post(f"/leads/{lead['id']}/convert", json={"details": {}})
    assert again.status_code == 422


def test_convert_without_opportunity_or_company(api):
    client, running = api
    lead = next(x for x in running.sandbox.account.snapshot("leads") if x["company_name"])
    companies = running.sandbox.account.count("companies")
    body = {"details": {"company": {"name": ""}}}
    result = client.post(f"/leads/{lead['id']}/convert", json=body).json()
    assert result["person"]["name"] == lead["name"] and result["person"]["company_id"] is None
    assert result["company"] is None and result["opportunity"] is None
    assert running.sandbox.account.count("companies") == companies


def test_convert_joins_the_company_the_lead_names(api):
    client, running = api
    account = running.sandbox.account
    company = account.snapshot("companies")[0]
    lead = account.create("leads", {"name": "Ann Lee", "company_name": company["name"]})
    result = client.post(f"/leads/{lead['id']}/convert", json={}).json()
    assert result["company"]["id"] == company["id"]
    assert result["person"]["company_id"] == company["id"]


def test_convert_refuses_bad_details(api):
    client, running = api
    lead = running.sandbox.account.create("leads", {"name": "Bo Ek"})
    bad_pipeline = {"details": {"opportunity": {"name": "x", "pipeline_id": 1}}}
    assert client.post(f"/leads/{lead['id']}/convert", json=bad_pipeline).status_code == 422
    both = {"details": {"company": {"id": 1, "name": "x"}}}
    assert client.post(f"/leads/{lead['id']}/convert", json=both).status_code == 422
    assert client.post("/leads/1/convert", json={}).status_code == 404
    assert client.post("/leads/search", json={"ids": [lead["id"]]}).json()  # still a lead


# -- re-appearance ----------------------------------------------------------------------------
def test_restore_puts_the_original_id_back(api):
    client, running = api
    account = running.sandbox.account
    person = account.snapshot("people")[0]
    client.delete(f"/people/{person['id']}")
    account.clock.advance(60)
    restored = running.admin("POST", f"/records/people/{person['id']}/restore")
    assert restored["id"] == person["id"] and restored["name"] == person["name"]
    assert restored["date_modified"] > person["date_modified"]
    assert (
        client.get(f"/people/{person['id']}").json()["date_modified"] == (restored["date_modified"])
    )
    with pytest.raises(httpx.HTTPStatusError) as exists:
        running.admin("POST", f"/records/people/{person['id']}/restore")
    assert exists.value.response.status_code == 422
    with pytest.raises(httpx.HTTPStatusError) as never:
        running.admin("POST", "/records/people/1/restore")
    assert never.value.response.status_code == 404


def test_create_under_an_explicit_free_id(api):
    client, running = api
    task = running.sandbox.account.snapshot("tasks")[0]
    running.admin("DELETE", f"/records/tasks/{task['id']}")
    again = running.admin("POST", "/records/tasks", {"id": task["id"], "name": "Back again"})
    assert again["id"] == task["id"]
    assert client.get(f"/tasks/{task['id']}").json()["name"] == "Back again"
    with pytest.raises(httpx.HTTPStatusError) as taken:
        running.admin("POST", "/records/tasks", {"id": task["id"], "name": "Twice"})
    assert taken.value.response.status_code == 422
    fresh = running.admin("POST", "/records/tasks", {"name": "New"})
    assert fresh["id"] != task["id"]


# -- chaos: deletions while a client pages ----------------------------------------------------
def chaos_run(serve, seed: int) -> tuple[list[dict], set[int]]:
    account = SandboxAccount.generate(seed=7, scale=0.05)
    with serve(account, chaos_deletes=2, seed=seed) as running, client_for(running) as client:
        seen: list[int] = []
        for page in range(1, 5):
            body = {"page_number": page, "page_size": 10, "sort_by": "date_created"}
            seen += [r["id"] for r in client.post("/people/search", json=body).json()]
        deleted = running.admin("GET", "/deleted/people?source=chaos")
        stats = running.stats()["deleted"]
        remaining = {r["id"] for r in account.snapshot("people")}
    assert stats == {"people": {"chaos": len(deleted)}}
    assert len(seen) == 40 and not {d["id"] for d in deleted[-2:]} & set(seen[-10:])
    return deleted, remaining


def test_chaos_deletes_records_during_paging_and_reports_them(serve):
    deleted, remaining = chaos_run(serve, seed=3)
    assert len(deleted) == 8  # two before each of the four searches
    ids = [d["id"] for d in deleted]
    assert all(d["deleted_at"] > 0 and d["source"] == "chaos" for d in deleted)
    assert not set(ids) & remaining
    assert len(remaining) + len(ids) == 100  # the account had 100 people
    again, _ = chaos_run(serve, seed=3)
    assert [d["id"] for d in again] == ids  # seeded: the same run deletes the same records
    other, _ = chaos_run(serve, seed=4)
    assert [d["id"] for d in other] != ids

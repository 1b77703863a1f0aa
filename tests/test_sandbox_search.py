"""Search semantics of the sandbox, over HTTP: filters, sorting, paging, ties, the 100k wall."""

from __future__ import annotations

import httpx
import pytest

from copper_sandbox import Sandbox, SandboxAccount, SandboxConfig, serve_in_thread
from copper_sandbox.generator import ENTITIES
from copper_sandbox.store import SPECS, EntityTable, parse_query, tie_order

from .conftest import copper_headers

RECORD_ENTITIES = [e for e in ENTITIES if e != "activities"]


def search_all(client: httpx.Client, entity: str, body: dict) -> list[dict]:
    """Every page of a search, concatenated."""
    rows, page = [], 1
    while True:
        r = client.post(f"/{entity}/search", json={**body, "page_size": 200, "page_number": page})
        r.raise_for_status()
        rows += r.json()
        if len(r.json()) < 200:
            return rows
        page += 1


def truth(running, entity: str) -> list[dict]:
    return running.sandbox.account.snapshot(entity)


@pytest.mark.parametrize("entity", [*RECORD_ENTITIES, "activities"])
def test_modified_range_is_inclusive_on_every_entity(api, entity):
    client, running = api
    records = truth(running, entity)
    if entity == "leads":
        records = [r for r in records if r.get("converted_timestamp") is None]
    stamps = sorted(r["date_modified"] for r in records)
    lo, hi = stamps[len(stamps) // 4], stamps[len(stamps) // 2]
    body = {"minimum_modified_date": lo, "maximum_modified_date": hi, "sort_by": "date_modified"}
    got = search_all(client, entity, body)
    want = {r["id"] for r in records if lo <= r["date_modified"] <= hi}
    assert {r["id"] for r in got} == want
    assert [r["date_modified"] for r in got] == sorted(r["date_modified"] for r in got)


def test_filters_are_anded_and_created_range_works(api):
    client, running = api
    people = truth(running, "people")
    created = sorted(r["date_created"] for r in people)
    modified = sorted(r["date_modified"] for r in people)
    c_lo, m_hi = created[len(created) // 3], modified[2 * len(modified) // 3]
    body = {"minimum_created_date": c_lo, "maximum_modified_date": m_hi, "sort_by": "date_created"}
    got = search_all(client, "people", body)
    want = {r["id"] for r in people if r["date_created"] >= c_lo and r["date_modified"] <= m_hi}
    assert {r["id"] for r in got} == want and want


def test_ids_filter_and_get_by_id(api):
    client, running = api
    people = truth(running, "people")[:5]
    got = client.post("/people/search", json={"ids": [p["id"] for p in people] + [1]}).json()
    assert sorted(r["id"] for r in got) == sorted(p["id"] for p in people)
    assert client.get(f"/people/{people[0]['id']}").json() == people[0]
    assert client.get("/people/1").status_code == 404


def test_activity_filters(api):
    client, running = api
    activities = truth(running, "activities")
    sample = activities[0]
    by_parent = search_all(client, "activities", {"parent": sample["parent"]})
    assert {r["id"] for r in by_parent} == {
        a["id"] for a in activities if a["parent"] == sample["parent"]
    }
    kind = {"id": sample["type"]["id"], "category": sample["type"]["category"]}
    dates = sorted(a["activity_date"] for a in activities)
    lo, hi = dates[10], dates[-10]
    got = search_all(
        client,
        "activities",
        {"activity_types": [kind], "minimum_activity_date": lo, "maximum_activity_date": hi},
    )
    want = {
        a["id"]
        for a in activities
        if a["type"] == sample["type"] and lo <= a["activity_date"] <= hi
    }
    assert {r["id"] for r in got} == want and want


def test_paging_walks_everything_once_and_ends_on_a_short_page(api):
    client, running = api
    got = search_all(client, "companies", {"sort_by": "date_created", "sort_direction": "desc"})
    ids = [r["id"] for r in got]
    assert len(ids) == len(set(ids)) == running.sandbox.account.count("companies")
    created = [r["date_created"] for r in got]
    assert created == sorted(created, reverse=True)
    assert len(client.post("/companies/search", json={}).json()) == 20  # default page size


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"page_size": 201}, "page_size"),
        ({"page_number": 0}, "page_number"),
        ({"sort_by": "favourite_colour"}, "sort_by"),
        ({"sort_direction": "sideways"}, "sort_direction"),
    ],
)
def test_invalid_search_bodies_get_a_422_with_a_message(api, body, message):
    client, _ = api
    r = client.post("/people/search", json=body)
    assert r.status_code == 422
    assert message in r.json()["message"]


def test_total_header_counts_matches(api):
    client, running = api
    r = client.post("/opportunities/search", json={"page_size": 1})
    assert int(r.headers["X-PW-TOTAL"]) == running.sandbox.account.count("opportunities")


def test_inflated_total_is_an_upper_bound(serve):
    with serve(total_inflation=0.5, seed=3) as running:
        client = httpx.Client(base_url=running.base_url, headers=copper_headers(running))
        true_total = running.sandbox.account.count("people")
        totals = {
            int(client.post("/people/search", json={"page_size": 1}).headers["X-PW-TOTAL"])
            for _ in range(10)
        }
        assert min(totals) >= true_total and max(totals) > true_total


def test_ties_come_back_in_a_stable_order_that_is_not_by_id(serve):
    account = SandboxAccount.generate(seed=1, scale=0.01, burst=500, burst_entity="people")
    with serve(account) as running:
        client = httpx.Client(base_url=running.base_url, headers=copper_headers(running))
        body = {"sort_by": "date_modified"}
        first, second = search_all(client, "people", body), search_all(client, "people", body)
    assert [r["id"] for r in first] == [r["id"] for r in second]
    second_counts: dict[int, list[int]] = {}
    for r in first:
        second_counts.setdefault(r["date_modified"], []).append(r["id"])
    burst_ids = max(second_counts.values(), key=len)
    assert len(burst_ids) >= 500
    assert burst_ids != sorted(burst_ids) and burst_ids != sorted(burst_ids, reverse=True)


def synthetic_table(n: int, second: int = 1_700_000_000) -> EntityTable:
    table = EntityTable(SPECS["people"])
    table.load(
        {"id": i, "name": f"p{i}", "date_created": second - i, "date_modified": second + i // 1000}
        for i in range(1, n + 1)
    )
    return table


def test_only_the_first_100000_matches_are_reachable():
    table = synthetic_table(100_500)
    spec = SPECS["people"]
    last = table.search(parse_query(spec, {"page_size": 200, "page_number": 500}))
    past = table.search(parse_query(spec, {"page_size": 200, "page_number": 501}))
    odd = table.search(parse_query(spec, {"page_size": 150, "page_number": 667}))
    assert last.total == past.total == 100_500
    assert len(last.records) == 200 and past.records == []
    assert len(odd.records) == 100_000 - 666 * 150  # the page straddling the wall is cut


def test_the_wall_holds_over_http_too(serve):
    account = SandboxAccount.generate(seed=1, scale=0.01)
    account.tables["people"] = synthetic_table(100_200)
    with serve(account) as running:
        client = httpx.Client(base_url=running.base_url, headers=copper_headers(running))
        body = {"page_size": 200, "sort_by": "date_modified"}
        r500 = client.post("/people/search", json={**body, "page_number": 500})
        r501 = client.post("/people/search", json={**body, "page_number": 501})
    assert len(r500.json()) == 200 and r501.json() == []
    assert r501.status_code == 200 and r501.headers["X-PW-TOTAL"] == "100200"


def test_secondary_filters_partition_a_burst_second_beyond_the_wall():
    """The store answers created-date slices of a 120k-record second, each fully reachable."""
    account = SandboxAccount.generate(seed=5, scale=0.01, burst=120_000, burst_entity="people")
    people = account.tables["people"]
    seconds: dict[int, int] = {}
    for r in people.records.values():
        seconds[r["date_modified"]] = seconds.get(r["date_modified"], 0) + 1
    second = max(seconds, key=seconds.__getitem__)
    assert seconds[second] >= 120_000
    created = sorted(
        r["date_created"] for r in people.records.values() if r["date_modified"] == second
    )
    mid = created[len(created) // 2]
    halves = [(None, mid - 1), (mid, None)]
    seen = 0
    for lo, hi in halves:
        body = {"minimum_modified_date": second, "maximum_modified_date": second}
        body |= {"minimum_created_date": lo, "maximum_created_date": hi}
        body = {k: v for k, v in body.items() if v is not None}
        page = account.search("people", {**body, "page_size": 200})
        assert page.total < 100_000
        seen += page.total
    assert seen == seconds[second]


def test_tie_order_is_not_monotonic_in_id():
    order = [tie_order(i) for i in range(1, 50)]
    assert order != sorted(order)


def test_server_ignoring_a_filter_is_configurable(serve):
    with serve(ignored_filters={"people": ["minimum_modified_date"]}) as running:
        client = httpx.Client(base_url=running.base_url, headers=copper_headers(running))
        people = truth(running, "people")
        newest = max(r["date_modified"] for r in people)
        got = client.post(
            "/people/search", json={"minimum_modified_date": newest, "page_size": 200}
        ).json()
    assert any(r["date_modified"] < newest for r in got)


def test_sandbox_server_in_thread_stops_cleanly():
    account = SandboxAccount.generate(seed=2, scale=0.01)
    with serve_in_thread(Sandbox(account, SandboxConfig())) as running:
        url = running.base_url
        assert httpx.get(running.root_url + "/_sandbox/stats").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/account", timeout=2)

"""Crowded seconds: bulk imports that share one creation second, and both stamps at once."""

from __future__ import annotations

import pytest

from copper import WindowError
from copper.settings import ENTITY_BY_NAME
from copper.windows import Window, WindowWalker
from copper_sandbox import SandboxAccount

from .warehouse import Loader, assert_warehouse_equals

SECOND = 1_700_000_000


def import_people(account: SandboxAccount, n: int, spread_modified: bool) -> None:
    """A bulk import: `n` people created in one second (and modified in one, or spread)."""
    table = account.tables["people"]
    template = account.snapshot("people")[0]
    for i in range(n):
        record = {
            **template,
            "id": 90_000_000 + i,
            "name": f"Imported {i}",
            "date_created": SECOND,
            "date_modified": SECOND + (i % 37 if spread_modified else 0),
        }
        table.put(record)


@pytest.mark.parametrize("spread_modified", [True, False])
def test_a_bulk_import_in_one_second_arrives_whole(serve, tmp_path, spread_modified):
    account = SandboxAccount.generate(seed=61, scale=0.02)
    import_people(account, 650, spread_modified)
    with serve(account, chaos_edits=0.5, seed=61) as running:
        loader = Loader(tmp_path, running)
        loader.run(entities=["people"])
        running.sandbox.config.update(chaos_edits=0)
        loader.run(entities=["people"])
        assert_warehouse_equals(loader, "people")


def test_more_than_100000_records_sharing_both_seconds_is_an_error_not_a_truncation():
    account = SandboxAccount.generate(seed=62, scale=0.01)
    table = account.tables["people"]
    table.load(
        {"id": i, "name": "x", "date_created": SECOND, "date_modified": SECOND}
        for i in range(1, 100_402)
    )

    def search(body: dict, _context: str):
        page = account.search("people", body)
        return page.records, page.total

    walker = WindowWalker(ENTITY_BY_NAME["people"], search)
    [planned] = walker.plan(SECOND, SECOND, 50_000)
    with pytest.raises(WindowError, match="more than 100,000 records share"):
        for _ in walker.walk(planned):
            pass
    assert planned.window == Window(SECOND, SECOND)


def walk_people(account: SandboxAccount, inflation: float = 0.0) -> tuple[list[int], int]:
    """Ids a full walk of people yields, and the searches it made (X-PW-TOTAL inflated by up
    to `inflation`, as Copper may over-report it)."""
    calls = []

    def search(body: dict, _context: str):
        page = account.search("people", body)
        calls.append(body)
        return page.records, page.total + int(page.total * inflation)

    walker = WindowWalker(ENTITY_BY_NAME["people"], search)
    ids = [r["id"] for p in walker.plan(0, SECOND + 10**6, 50_000) for page in walker.walk(p)
           for r in page]  # fmt: skip
    return ids, len(calls)


@pytest.mark.parametrize("inflation", [0.0, 0.3])
def test_a_walk_ends_without_an_empty_page_when_x_pw_total_says_so(inflation):
    """399 people, one per creation second: page 1, then 'created >= the 200th' re-reads it
    and brings the last 199. X-PW-TOTAL (200) says nothing is left, so no third request; an
    over-reported total costs that request but never a row."""
    account = SandboxAccount.generate(seed=63, scale=0.01)
    table = account.tables["people"]
    for person in account.snapshot("people"):
        account.delete("people", person["id"])
    table.load(
        {"id": i, "name": f"p{i}", "date_created": SECOND + i, "date_modified": SECOND + i}
        for i in range(1, 400)
    )
    ids, searches = walk_people(account, inflation)
    assert sorted(ids) == list(range(1, 400))
    assert searches == (2 if inflation == 0 else 3)

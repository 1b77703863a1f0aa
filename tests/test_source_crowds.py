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

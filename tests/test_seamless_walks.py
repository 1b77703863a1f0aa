"""Seamless restarts on a first load: each page read once when nothing changes; a seam whose
count does not match (rows of the last second after the page, rows leaving mid-walk, an
inflated X-PW-TOTAL) is read again, and nothing is lost."""

from __future__ import annotations

import math
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from copper.settings import ENTITY_BY_NAME
from copper.windows import WindowWalker
from copper_sandbox import SandboxAccount

from .warehouse import Loader, assert_warehouse_equals

PEOPLE = ENTITY_BY_NAME["people"]
START = 1_600_000_000


def people_account(n: int, seconds: list[int] | None = None) -> SandboxAccount:
    """`n` people, created at `seconds` (default: each in a second of its own)."""
    account = SandboxAccount.generate(seed=71, scale=0.01)
    table = account.tables["people"]
    template = account.snapshot("people")[0]
    for record in account.snapshot("people"):
        account.delete("people", record["id"])
    for i in range(n):
        created = START + 3_600 * i if seconds is None else seconds[i]
        table.put({**template, "id": 70_000_000 + i, "date_created": created,
                   "date_modified": created + 60})  # fmt: skip
    return account


class Counted:
    """A search function over the account that counts its requests (and may meddle)."""

    def __init__(self, account: SandboxAccount, inflate: float = 0.0) -> None:
        self.account, self.inflate, self.requests = account, inflate, 0
        self.rng = random.Random(3)
        self.after_request: list = []

    def __call__(self, body: dict, _context: str) -> tuple[list[dict], int]:
        self.requests += 1
        page = self.account.search("people", body)
        for meddle in self.after_request:
            meddle(self.requests)
        extra = int(page.total * self.inflate * self.rng.random()) if page.total else 0
        return page.records, page.total + extra


def walk_all(walker: WindowWalker, hi: int) -> list[int]:
    planned = walker.plan(0, hi, 95_000)
    return [r["id"] for p in planned for page in walker.walk(p) for r in page]


def test_a_seamless_walk_reads_each_page_once_when_nothing_changes():
    account = people_account(1_000)
    seamless, seamed = Counted(account), Counted(account)
    ids = walk_all(WindowWalker(PEOPLE, seamless, seamless=True), START + 10**7)
    assert sorted(ids) == sorted(r["id"] for r in account.snapshot("people"))
    assert seamless.requests == math.ceil(1_000 / 200)  # X-PW-TOTAL says when it is all read
    assert sorted(walk_all(WindowWalker(PEOPLE, seamed), START + 10**7)) == sorted(ids)
    assert seamed.requests == math.ceil((1_000 - 1) / 199)  # a row of each page read again


def test_rows_of_the_last_second_after_the_page_are_read_again():
    """Three people a second: every page boundary falls inside a second."""
    account = people_account(1_000, [START + i // 3 for i in range(1_000)])
    search = Counted(account)
    walker = WindowWalker(PEOPLE, search, seamless=True)
    ids = walk_all(walker, START + 10**7)
    assert sorted(ids) == sorted(r["id"] for r in account.snapshot("people"))
    assert walker.seams_reread == 1  # the first miss turns the walk back to keyset seams


def test_an_inflated_total_costs_one_seam_and_loses_nothing():
    account = people_account(1_000)
    search = Counted(account, inflate=0.3)
    walker = WindowWalker(PEOPLE, search, seamless=True)
    ids = walk_all(walker, START + 10**7)
    assert sorted(ids) == sorted(r["id"] for r in account.snapshot("people"))
    assert walker.seams_reread == 1


def test_rows_leaving_mid_walk_lose_nothing_and_only_one_ahead_costs_a_seam():
    """Edited people leave the window (their new stamp is past it). One already read leaves
    after the second request: keyset bounds do not shift, and its count is not the walk's
    any more. One not yet read leaves after the third: the count falls by one more than the
    page, so the seam is read again (nothing was missed, but the walk cannot know that)."""
    account = people_account(1_000)
    search = Counted(account)
    people = sorted(account.snapshot("people"), key=lambda r: r["date_created"])
    behind, ahead = people[10]["id"], people[900]["id"]
    search.after_request += [
        lambda n: n == 2 and account.update("people", behind, {"title": "edited"}),
        lambda n: n == 3 and account.update("people", ahead, {"title": "edited"}),
    ]
    walker = WindowWalker(PEOPLE, search, seamless=True)
    ids = walk_all(walker, START + 10**7)  # the window ends long before the edits' stamps
    assert sorted(ids) == sorted(r["id"] for r in people if r["id"] != ahead)
    assert walker.seams_reread == 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 700),
    spread=st.sampled_from([1, 3, 50, 400, 10**6]),  # creation seconds: from one to all apart
    changes=st.lists(st.tuples(st.integers(1, 10), st.integers(0, 699), st.booleans()), max_size=6),
    seamless=st.booleans(),
    seed=st.integers(0, 1_000),
)
def test_a_walk_reads_once_every_row_that_stays_in_its_window(n, spread, changes, seamless, seed):
    """Whatever the ties and whatever leaves mid-walk (edited past the window, deleted),
    with seams or without: no row that stayed is missed, none is read twice."""
    rng = random.Random(seed)
    account = people_account(n, [START + rng.randrange(spread) for _ in range(n)])
    ids = sorted(r["id"] for r in account.snapshot("people"))
    search = Counted(account)
    touched: set[int] = set()

    def change(request: int, after: int, index: int, delete: bool) -> None:
        target = ids[index % len(ids)]
        if request != after or target in touched:
            return
        touched.add(target)
        if delete:
            account.delete("people", target)
        else:
            account.update("people", target, {"title": "edited"})  # leaves the window

    for after, index, delete in changes:
        search.after_request.append(
            lambda request, a=after, i=index, d=delete: change(request, a, i, d)
        )
    read = walk_all(WindowWalker(PEOPLE, search, seamless=seamless), START + 10**6 + 60)
    assert len(read) == len(set(read))  # none twice
    assert set(ids) - touched <= set(read) <= set(ids)  # every row that stayed


def test_a_first_load_under_edits_and_inflated_counts_holds_every_record(serve, tmp_path):
    """Every record that existed when the first load started is in the warehouse after it,
    though records change mid-walk and X-PW-TOTAL overstates (the seamless walks' net is the
    reconciliation that follows them)."""
    account = SandboxAccount.generate(seed=72, scale=0.3)
    names = ["people", "companies", "opportunities", "tasks"]
    with serve(account, chaos_edits=1.0, total_inflation=0.2, seed=72) as running:
        loader = Loader(tmp_path, running)
        before = {name: {r["id"] for r in account.snapshot(name)} for name in names}
        loader.run(entities=names, min_split_records=300, window_workers=4)
        for name in names:
            assert before[name] <= {r["id"] for r in loader.rows(name)}, name
        running.sandbox.config.update(chaos_edits=0, total_inflation=0)
        loader.run(entities=names)
        for name in names:
            assert_warehouse_equals(loader, name)


def test_a_quiet_first_load_reads_each_page_once_and_needs_no_reconciliation(serve, tmp_path):
    """Nothing changes while it runs: each entity costs the least possible, ceil(N / 200)
    searches, as its first probe counted every record modified since the start (also past
    the run's start) and the walk read as many. A record deleted after it was read is found
    by the next reconciliation."""
    account = SandboxAccount.generate(seed=73, scale=0.4)
    names = ["people", "companies", "opportunities", "tasks"]
    with serve(account) as running:
        loader = Loader(tmp_path, running)
        loader.run(entities=names)
        by_path = running.stats()["by_path"]
        for name in names:
            pages = math.ceil(len(account.snapshot(name)) / 200)
            assert by_path[f"POST /{name}/search"] == pages, (name, by_path)
            assert_warehouse_equals(loader, name)
        gone = account.snapshot("people")[0]["id"]
        account.delete("people", gone)
        loader.run(entities=["people"], reconcile_every_hours=0)
        assert_warehouse_equals(loader, "people")

        # asked to reconcile every run, a first load reconciles too, complete or not
        running.admin("POST", "/stats/reset")
        fresh = Loader(tmp_path, running, name="every_run")
        fresh.run(entities=["people"], reconcile_every_hours=0)
        pages = math.ceil(len(account.snapshot("people")) / 200)
        assert running.stats()["by_path"]["POST /people/search"] == pages + 1


def test_a_count_taken_before_a_split_does_not_reset_the_walks_rows_left():
    """A split lowers a walk's bound while its request is in flight: the answer's X-PW-TOTAL
    still counts the whole range, and would make the walk look twice as long as it is (and
    be split again for nothing)."""
    account = people_account(1_000)
    search = Counted(account)
    walker = WindowWalker(PEOPLE, search)
    [planned] = walker.plan(0, START + 10**7, 95_000)
    walk = walker.stretch(planned)
    pages = walker.walk(walk)
    next(pages)  # the probe's page: 800 rows left
    search.after_request.append(lambda n: n == 2 and walk.split(min_records=100))
    next(pages)  # answered with the total of the whole range, after the split took half
    assert walk.remaining is not None and walk.remaining <= 400

"""A worker with an empty local dir resumes incrementally: dlt restores the state from the
warehouse. What a distributed Airflow (Celery, Kubernetes) relies on: the next run of an account
may land on any worker, and only the destination is shared."""

from __future__ import annotations

from pathlib import Path

import pytest

from copper_sandbox import SandboxAccount
from pipelines.runner import RunOptions, RunReport, run

from .warehouse import Loader, assert_warehouse_equals

ENTITIES = ("people", "companies", "leads", "opportunities", "projects", "tasks", "activities")


def run_on_a_new_worker(worker: Path, running, destination: str, warehouse: Path, dataset: str):
    """One run from `worker`, a local dlt dir no run has used (a fresh pod, another host)."""
    assert not worker.exists()
    messages: list[str] = []
    options = RunOptions(
        destination=destination,
        duckdb_path=warehouse,
        dataset=dataset,
        pipeline_name="copper_resume",  # the state in the warehouse is found by this name
        pipelines_dir=worker,
        source_options={
            "api_key": running.api_key,
            "user_email": running.user_email,
            "base_url": running.base_url,
            "requests_per_minute": 100_000,
        },
    )
    report = run(options, log=messages.append)
    return report, messages


def extracted(report: RunReport) -> dict[str, int]:
    return {e.entity: e.rows_extracted for e in report.entities}


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_a_worker_with_an_empty_local_dir_resumes_incrementally(
    serve, tmp_path, request, monkeypatch, destination
):
    if destination == "postgres":
        url = request.getfixturevalue("postgres_url")
        dataset = request.getfixturevalue("pg_dataset")
        monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", url)
        import dlt

        warehouse_destination = dlt.destinations.postgres(url)
    else:
        dataset, warehouse_destination = "copper", None
    warehouse = tmp_path / "copper_resume.duckdb"
    account = SandboxAccount.generate(seed=61, scale=0.2)
    with serve(account) as running:
        first, _ = run_on_a_new_worker(tmp_path / "worker-1", running, destination, warehouse,
                                       dataset)  # fmt: skip
        loaded = {e.entity: e.rows_loaded for e in first.entities}
        assert loaded["people"] == account.count("people"), first.table()

        people = account.snapshot("people")
        account.update("people", people[0]["id"], {"title": "Head of Resumption"})
        account.update("people", people[5]["id"], {"name": "Moved Worker"})
        tasks = account.snapshot("tasks")
        account.update("tasks", tasks[2]["id"], {"status": "Completed"})
        created = account.create("companies", {"name": "Fresh Pod Inc"})
        before = running.stats()["requests"]

        second, messages = run_on_a_new_worker(tmp_path / "worker-2", running, destination,
                                               warehouse, dataset)  # fmt: skip
        requests = running.stats()["requests"] - before

        loader = Loader(tmp_path, running, name="copper_resume", dataset=dataset,
                        destination=warehouse_destination)  # fmt: skip
        for entity in ENTITIES:
            assert_warehouse_equals(loader, entity)

    # resumed from the cursors in the warehouse, not a full load: only the changed records
    # (and the few that share the cursor's second, re-read by the inclusive lower bound)
    assert not any("full load" in m for m in messages), messages
    rows = extracted(second)
    full = extracted(first)
    assert 2 <= rows["people"] <= 5, second.table()
    assert 1 <= rows["tasks"] <= 4, second.table()
    assert 1 <= rows["companies"] <= 4, second.table()
    for entity in ("leads", "opportunities", "projects"):
        assert rows[entity] <= 3, second.table()
    # activities are re-read `activity_lookback_days` back every run, but not all of them
    assert rows["activities"] < full["activities"], second.table()
    assert sum(rows.values()) < sum(full.values()) / 4, second.table()
    assert requests <= first.requests, (requests, first.requests)
    assert created["id"] in {r["id"] for r in loader.rows("companies")}

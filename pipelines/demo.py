"""`copper-pipeline demo`: a simulated Copper account, loaded into demo.duckdb, then queried."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

from copper_sandbox import Sandbox, SandboxAccount, SandboxConfig, serve_in_thread

from .runner import RunOptions, run

EXAMPLES = {
    "Rows per table": """
        select 'people' as entity, count(*) as n from copper.people
            where _copper_deleted_at is null
        union all select 'companies', count(*) from copper.companies
            where _copper_deleted_at is null
        union all select 'leads', count(*) from copper.leads where _copper_deleted_at is null
        union all select 'opportunities', count(*) from copper.opportunities
            where _copper_deleted_at is null
        union all select 'projects', count(*) from copper.projects
            where _copper_deleted_at is null
        union all select 'tasks', count(*) from copper.tasks where _copper_deleted_at is null
        union all select 'activities', count(*) from copper.activities
            where _copper_deleted_at is null""",
    "Deleted in Copper since the first load (found by the reconciliation)": """
        select entity, detected_by, count(*) as records
        from copper._copper_deletions group by all order by entity""",
    "Open pipeline value by stage": """
        select p.name as pipeline, s.name as stage, count(*) as deals,
               round(sum(o.monetary_value)) as value
        from copper.opportunities o
        join copper.pipeline_stages s on s.id = o.pipeline_stage_id
        join copper.pipelines p on p.id = o.pipeline_id
        where o.status = 'Open'
        group by all order by pipeline, value desc""",
    "Win rate by owner": """
        select u.name as owner, count(*) filter (where o.status = 'Won') as won,
               count(*) filter (where o.status = 'Lost') as lost,
               round(100.0 * count(*) filter (where o.status = 'Won')
                     / nullif(count(*) filter (where o.status in ('Won', 'Lost')), 0), 1)
                 as win_rate_pct
        from copper.opportunities o join copper.users u on u.id = o.assignee_id
        group by all order by won desc limit 5""",
    "Companies by industry (a custom field)": """
        select coalesce(cf_industry, '(not set)') as industry, count(*) as companies
        from copper.companies group by all order by companies desc limit 6""",
}


def _users_delete_some(account: SandboxAccount) -> int:
    """A merged duplicate, a removed lead, deleted tasks and activities: what users delete."""
    deleted = 0
    for entity, count in (("people", 2), ("leads", 3), ("tasks", 4), ("activities", 5)):
        for record in account.snapshot(entity)[:count]:
            account.delete(entity, record["id"])
            deleted += 1
    return deleted


def demo(duckdb_path: Path, scale: float = 1.0) -> int:
    state_dir = duckdb_path.resolve().parent / ".copper_demo"
    if not duckdb_path.exists():
        shutil.rmtree(state_dir, ignore_errors=True)  # a new database starts from scratch
    print("Starting a simulated Copper account (the sandbox, Copper's limits: 180 requests/min)")
    account = SandboxAccount.generate(seed=0, scale=scale)
    with serve_in_thread(Sandbox(account, SandboxConfig())) as running:
        print(f"  serving {running.base_url}")
        options = RunOptions(
            destination="duckdb",
            duckdb_path=duckdb_path,
            pipeline_name="copper_demo",
            pipelines_dir=state_dir,
            source_options={
                "base_url": running.base_url,
                "api_key": running.api_key,
                "user_email": running.user_email,
            },
            progress_every=5.0,
        )
        print(f"Loading it into {duckdb_path} ...")
        run(options)
        deleted = _users_delete_some(account)
        print(f"Meanwhile Copper's users deleted {deleted} records; loading again ...")
        options.dbt, options.reconcile_every_hours = True, 0  # look for deletions now
        report = run(options)
    print()
    print(report.table())
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        for title, sql in EXAMPLES.items():
            print(f"\n{title}:")
            print(con.sql(sql))
    print(
        f"\nOpen the data:\n"
        f"  .venv/bin/python -c \"import duckdb; duckdb.connect('{duckdb_path}').sql("
        f"'show all tables').show()\"\n"
        f"  or, with the DuckDB CLI: duckdb {duckdb_path}\n"
        f"Every table is in the `copper` schema; `_copper_runs` says when each load ran."
    )
    return 0

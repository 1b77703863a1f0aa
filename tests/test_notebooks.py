"""The analyst notebook runs headless against a freshly loaded warehouse, and is committed clean."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import nbformat
import pytest
from ipykernel.kernelspec import install as install_kernelspec
from nbclient import NotebookClient

from copper_sandbox import SandboxAccount

from .warehouse import Loader

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "copper_overview.ipynb"
SECTIONS = ("freshness", "funnel", "win-rate", "activity", "custom-field")
ENTITIES = ("people", "companies", "leads", "opportunities", "projects", "tasks", "activities")
KERNEL = "copper-notebook-test"


def kernel_for_this_python(root: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec running this interpreter (the venv's), found only through JUPYTER_PATH:
    no global Jupyter setup is used or changed."""
    install_kernelspec(kernel_name=KERNEL, prefix=str(root))
    monkeypatch.setenv("JUPYTER_PATH", str(root / "share" / "jupyter"))
    return KERNEL


def account_with_own_custom_fields(seed: int) -> SandboxAccount:
    """A sandbox whose custom fields are not the demo's: Industry is renamed Sector (so its
    column is cf_sector), and a new Dropdown on opportunities has by far the most values. It is
    set on open deals and closed deals with a close date: setting it bumps date_modified, which
    places a closed deal without a close date in the win-rate chart."""
    account = SandboxAccount.generate(seed=seed, scale=0.2)
    industry = next(d for d in account.custom_field_definitions() if d["name"] == "Industry")
    account.rename_custom_field(industry["id"], "Sector")
    channel = account.add_custom_field(
        "Deal Channel", "Dropdown", ["opportunity"], ["Inbound", "Partner", "Outbound", "Event"]
    )
    rng = random.Random(seed)
    weights = (5, 3, 2, 1)
    for deal in account.snapshot("opportunities"):
        if deal["status"] == "Open" or deal.get("close_date"):
            option = rng.choices(channel["options"], weights)[0]
            account.update(
                "opportunities",
                deal["id"],
                {
                    "custom_fields": [
                        {"custom_field_definition_id": channel["id"], "value": option["id"]}
                    ]
                },
            )
    return account


def expected_facts(db_path: Path) -> dict[str, list[str]]:
    """What each section's sentence must say, computed here independently of the notebook."""
    with duckdb.connect(str(db_path), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")

        def one(sql: str, params: list | None = None):
            return con.execute(sql, params or []).fetchone()

        total = sum(one(f"select count(*) from copper.{e}")[0] for e in ENTITIES)
        (top_pipeline,) = one(
            "select p.name from copper.opportunities o join copper.pipelines p "
            "on p.id = o.pipeline_id where o.status = 'Open' "
            "group by p.name order by sum(o.monetary_value) desc limit 1"
        )
        won, lost = one(
            "select count(*) filter (where status = 'Won'), count(*) filter (where status = 'Lost')"
            " from copper.opportunities"
        )
        # the last 12 weeks of logged activity (future-dated meetings aside), Monday weeks
        (last,) = one(
            "select max(activity_date) from copper.activities "
            "where activity_date <= (select max(date_modified) from copper.activities)"
        )
        start = last.date() - timedelta(days=last.weekday()) - timedelta(weeks=11)
        per_owner = con.execute(
            "select u.name, count(*) from copper.activities a join copper.users u "
            "on u.id = a.user_id where a.activity_date >= ? and a.activity_date <= ? group by 1",
            [datetime(start.year, start.month, start.day), last],
        ).fetchall()
        top_owner = min(per_owner, key=lambda r: (-r[1], r[0]))[0]
        top_channel, deals = one(
            "select cf_deal_channel, count(*) from copper.opportunities "
            "where cf_deal_channel is not null group by 1 order by 2 desc, 1 limit 1"
        )
    return {
        "freshness": [f"The warehouse holds {total:,} records", "hours ago"],
        "funnel": [f"{top_pipeline} has the most open value: $"],
        "win-rate": [
            f"The overall win rate is {won / (won + lost):.0%} ({won:,} won, {lost:,} lost"
        ],
        "activity": [f"In the 12 weeks to {last:%d %B %Y}, {top_owner} logged the most activity"],
        "custom-field": [
            "Deal Channel is the Dropdown field on companies or opportunities",
            f"{top_channel} is the most common label ({deals:,} opportunities)",
        ],
    }


def outputs_of(cell) -> tuple[set[str], str]:
    """The MIME types a code cell displayed, and all its text."""
    mimes, texts = set(), []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            texts.append(output["text"])
        for mime, value in output.get("data", {}).items():
            mimes.add(mime)
            if mime in ("text/plain", "text/markdown"):
                texts.append(value)
    return mimes, "\n".join(texts)


def test_notebook_runs_against_a_loaded_sandbox(serve, tmp_path, monkeypatch):
    with serve(account_with_own_custom_fields(seed=21)) as running:
        loader = Loader(tmp_path, running)
        loader.run()
    expected = expected_facts(loader.db_path)

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("COPPER_DUCKDB_PATH", str(loader.db_path))
    monkeypatch.delenv("COPPER_DATASET", raising=False)
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "matplotlib"))
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name=kernel_for_this_python(tmp_path / "kernel", monkeypatch),
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    nbformat.write(notebook, tmp_path / "executed.ipynb")  # for a look when this fails

    cells = {tag: c for c in notebook.cells for tag in c.metadata.get("tags", [])}
    assert set(SECTIONS) <= set(cells), "every section's code cell is tagged with its name"
    for section in SECTIONS:
        mimes, text = outputs_of(cells[section])
        assert "image/png" in mimes, f"{section}: no chart"
        for fact in expected[section]:
            assert fact in text, f"{section}: {fact!r} not in {text!r}"
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors


def test_notebook_is_committed_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert notebook.cells[0].cell_type == "markdown"
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [], f"cell {cell.id} has outputs"
        assert cell.execution_count is None, f"cell {cell.id} has an execution count"

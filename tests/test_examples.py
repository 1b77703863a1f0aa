"""The code users copy works: `pipelines/copper_pipeline.py` and the README's own pipeline."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from pipelines import copper_pipeline

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def copper_env(serve, tmp_path, monkeypatch):
    """A sandbox account, credentials in dlt's environment variables, an empty work dir."""
    with serve() as running:
        monkeypatch.setenv("SOURCES__COPPER__API_KEY", running.api_key)
        monkeypatch.setenv("SOURCES__COPPER__USER_EMAIL", running.user_email)
        monkeypatch.setenv("SOURCES__COPPER__BASE_URL", running.base_url)
        monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))  # pipelines' local state
        monkeypatch.chdir(tmp_path)
        yield running


def people_in(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("select count(*) from copper.people").fetchone()[0]


def test_the_example_pipeline_loads_the_account(copper_env, tmp_path):
    copper_pipeline.load_copper()
    assert people_in(tmp_path / "copper_warehouse.duckdb") == len(
        copper_env.sandbox.account.snapshot("people")
    )


def test_the_readme_pipeline_runs_as_written(copper_env, tmp_path):
    section = README.read_text().split("### Your own pipeline", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})  # the README example, as written
    assert people_in(tmp_path / "copper_warehouse.duckdb") > 0

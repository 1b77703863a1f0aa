"""The run's process settings: applied for the run, restored after it, never over the user's."""

from __future__ import annotations

import gc
import os

import pytest

from pipelines.tuning import DLT_SETTINGS, GC_THRESHOLDS, tuned_for_throughput


@pytest.fixture
def clean_env(monkeypatch):
    """No dlt setting in the environment; whatever the test sets is undone after it."""
    for name in DLT_SETTINGS:
        monkeypatch.setenv(name, "")  # recorded, so teardown restores the original state
        monkeypatch.delenv(name)
    return monkeypatch


def test_the_gc_is_tuned_for_the_run_and_restored_after_it(clean_env):
    before = gc.get_threshold()
    with tuned_for_throughput():
        assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_threshold() == before


def test_the_gc_is_restored_when_the_run_fails(clean_env):
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), tuned_for_throughput():
        raise RuntimeError("the run failed")
    assert gc.get_threshold() == before


def test_dlt_settings_are_defaults_the_user_can_override(clean_env):
    clean_env.setenv("NORMALIZE__WORKERS", "1")
    with tuned_for_throughput():
        assert os.environ["NORMALIZE__WORKERS"] == "1"
        assert os.environ["DATA_WRITER__DISABLE_COMPRESSION"] == "true"
        assert int(os.environ["SOURCES__DATA_WRITER__FILE_MAX_BYTES"]) > 0

"""Prefect-tutorial-like flows (tests/sdk/flow_files/tutorial_flows.py) record what a Prefect user expects,
whether the file is imported into a running program or run as a script with no server."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path

import pytest

from tests.sdk.tutorial import (
    EXPECTED_RUNS,
    EXPECTED_SUMMARY,
    FLOW_FILE,
    records_from_models,
    records_from_sqlite,
    run_script,
)
from tests.support.cli import orchestrator_env
from tests.support.server import sqlite_pass_only


def _import_flow_file():
    """A fresh copy of the flow file's module (its retry counter starts at zero)."""
    spec = importlib.util.spec_from_file_location(f"tutorial_flows_{uuid.uuid4().hex}", FLOW_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.django_db(transaction=True)
def test_tutorial_flows_in_process_record_the_expected_runs():
    """Imported and called in this process, the flows end as expected and every run is recorded in full."""
    assert _import_flow_file().run_all() == EXPECTED_SUMMARY
    assert records_from_models() == EXPECTED_RUNS


@sqlite_pass_only
def test_tutorial_flows_as_a_script_without_a_server_record_the_expected_runs(tmp_path: Path):
    """`python flow.py` with no server records into SQLite in ORCHESTRATOR_HOME, migrating it on first use."""
    home = tmp_path / "home"
    assert run_script(orchestrator_env(home)) == EXPECTED_SUMMARY
    assert records_from_sqlite(home / "orchestrator.db") == EXPECTED_RUNS

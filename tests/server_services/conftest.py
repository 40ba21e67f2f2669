"""Fixtures for the services tests."""

from pathlib import Path

import pytest


@pytest.fixture
def services_home(tmp_path: Path) -> Path:
    """The ORCHESTRATOR_HOME of the processes a test starts (their embedded broker's folder is in it)."""
    return tmp_path / "home"

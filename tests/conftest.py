"""Shared fixtures. The suite runs on the database ORCHESTRATOR_DATABASE_URL names (SQLite or PostgreSQL)."""

import pytest
from rest_framework.test import APIClient

pytest_plugins = ["tests.support.server", "tests.support.browser"]


@pytest.fixture
def api(db) -> APIClient:
    return APIClient()

"""Fixtures for the engine tests: a flow to hang runs on."""

import pytest

from apps.flows.models import Flow
from apps.flows.services import flow_get_or_create


@pytest.fixture
def flow(db) -> Flow:
    return flow_get_or_create(name="orchestration-tests")[0]

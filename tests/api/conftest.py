"""Fixtures for the API tests: real rows made through the services, and a client that sends raw bodies."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from apps.concurrency.models import ConcurrencyLimit
from apps.concurrency.services import concurrency_limit_create
from apps.flows.models import Flow
from apps.flows.services import flow_get_or_create
from apps.runs import services as run_services
from apps.runs.models import FlowRun, TaskRun
from tests.conftest import authenticated


@pytest.fixture(scope="session")
def _session_client() -> APIClient:
    return APIClient()


@pytest.fixture
def api(db, _session_client) -> APIClient:
    """The shared `api` client, kept for the whole session: a new client reloads the middleware (and WhiteNoise
    rescans every static file) on its first request, which made each of these small tests ten times slower."""
    _session_client.cookies.clear()
    return authenticated(_session_client, "write")


@pytest.fixture
def flow(db) -> Flow:
    return flow_get_or_create(name="etl", tags=["team-a"])[0]


@pytest.fixture
def flow_run(flow) -> FlowRun:
    return run_services.flow_run_create(flow=flow, name="nightly-load", tags=["etl"])[0]


@pytest.fixture
def task_run(flow_run) -> TaskRun:
    return run_services.task_run_create(flow_run=flow_run, task_key="pkg.extract", dynamic_key="0")[0]


@pytest.fixture
def concurrency_limit(db) -> ConcurrencyLimit:
    return concurrency_limit_create(tag="database", limit=2)


@dataclass
class World:
    """One of every resource, so any endpoint can be addressed."""

    flow: Flow
    flow_run: FlowRun
    task_run: TaskRun
    limit: ConcurrencyLimit


@pytest.fixture
def world(flow, flow_run, task_run, concurrency_limit) -> World:
    return World(flow=flow, flow_run=flow_run, task_run=task_run, limit=concurrency_limit)

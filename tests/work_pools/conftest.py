"""Fixtures for the work pool tests: a flow, pools made through the services, and runs in a pool."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.flows.models import Flow
from apps.flows.services import flow_get_or_create
from apps.runs import services as run_services
from apps.runs.models import FlowRun
from apps.work_pools.models import WorkPool
from apps.work_pools.services import work_pool_create
from orchestrator.states import Scheduled


@pytest.fixture
def flow(db) -> Flow:
    return flow_get_or_create(name="pool-tests")[0]


@pytest.fixture
def pool(db) -> WorkPool:
    return work_pool_create(name="local")


def scheduled_run(flow: Flow, pool: str | None = "local", *, seconds: float = -1, **kwargs: Any) -> FlowRun:
    """A Scheduled run of `pool`, due `seconds` from now (negative: already due)."""
    run, _ = run_services.flow_run_create(
        flow=flow,
        work_pool_name=pool,
        state=Scheduled(scheduled_time=timezone.now() + timedelta(seconds=seconds)),
        **kwargs,
    )
    return run

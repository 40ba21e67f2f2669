"""Fixtures for the deployment tests: a flow, a deployment body, and a way to read the runs the scheduler made."""

from __future__ import annotations

import pytest

from apps.flows.models import Flow
from apps.flows.services import flow_get_or_create
from apps.runs.models import FlowRun

PARAMETER_SCHEMA = {
    "title": "Parameters",
    "type": "object",
    "properties": {
        "day": {"title": "day", "type": "string"},
        "limit": {"title": "limit", "type": "integer", "default": 10},
        "options": {"title": "options", "type": "object", "properties": {"dry": {"type": "boolean"}}},
    },
    "required": ["day"],
    "additionalProperties": False,
}


@pytest.fixture
def flow(db) -> Flow:
    return flow_get_or_create(name="etl")[0]


def deployment_body(**changes) -> dict:
    body = {
        "flow_name": "etl",
        "name": "nightly",
        "entrypoint": "flows/etl.py:etl",
        "parameters": {"limit": 5},
        "parameter_openapi_schema": PARAMETER_SCHEMA,
        "work_pool_name": "local",
        "tags": ["etl"],
        "schedules": [{"schedule": {"interval": 3600}}],
    }
    body.update(changes)
    return body


def scheduled_runs(deployment_id) -> list[FlowRun]:
    """The deployment's auto-scheduled runs still waiting, soonest first."""
    return list(
        FlowRun.objects.filter(deployment_id=deployment_id, auto_scheduled=True, state_type="SCHEDULED").order_by(
            "expected_start_time"
        )
    )

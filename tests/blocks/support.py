"""Runs whose results are stored in a block, made as the SDK makes them: a run that ends Completed through the
engine with the block's result reference as its state's data (orchestrator/sdk/results.py)."""

from __future__ import annotations

from apps.flows.services import flow_get_or_create
from apps.runs.models import FlowRun, TaskRun
from apps.runs.services import flow_run_create, task_run_create
from orchestrator.states import Completed, Running


def reference(block: str) -> dict[str, str]:
    return {"storage": "block", "block": block, "path": "3f2a9c", "serializer": "cloudpickle"}


def flow_run_with_result_in(block: str, name: str) -> FlowRun:
    flow = flow_get_or_create(name="etl")[0]
    return flow_run_create(flow=flow, name=name, state=Running(), next_state=Completed(data=reference(block)))[0]


def task_run_with_result_in(block: str, name: str) -> TaskRun:
    parent = flow_run_create(flow=flow_get_or_create(name="etl")[0], name=f"{name}-parent", state=Running())[0]
    return task_run_create(
        flow_run=parent, task_key="load", name=name, state=Running(), next_state=Completed(data=reference(block))
    )[0]

"""Deleting a running task run (or its flow run) frees the tag concurrency slots it held: no state change
will ever come for it, and a leaked slot would block the tag forever."""

from __future__ import annotations

import pytest

from apps.concurrency.services import concurrency_limit_create
from apps.runs import services
from tests.concurrency.support import slots_of
from tests.orchestration.helpers import flow_run_in, task_run_in

pytestmark = pytest.mark.django_db


def test_deleting_a_running_task_run_frees_its_slots(flow):
    """The task run held slots on two limited tags; both are free after the delete, others untouched."""
    concurrency_limit_create(tag="db", limit=2)
    concurrency_limit_create(tag="api", limit=2)
    parent = flow_run_in(flow, "Running")
    doomed = task_run_in(parent, "Running", task_key="doomed", tags=["db", "api"])
    kept = task_run_in(parent, "Running", task_key="kept", tags=["db"])

    services.task_run_delete(run=doomed)

    assert slots_of("db") == [str(kept.id)]
    assert slots_of("api") == []


def test_deleting_a_flow_run_frees_the_slots_of_its_running_task_runs(flow):
    """Deleting a flow run cascades to its task runs; their slots go with them."""
    concurrency_limit_create(tag="db", limit=1)
    parent = flow_run_in(flow, "Running")
    task_run_in(parent, "Running", task_key="holder", tags=["db"])
    assert len(slots_of("db")) == 1

    services.flow_run_delete(run=parent)

    assert slots_of("db") == []

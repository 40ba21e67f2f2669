"""The run page's "Why is this run waiting?" panel through Django's test client: shown with its reasons and
links while the run waits, gone once it runs, and its fragment (the part the page's script re-reads)."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.accounts.roles import VIEWER
from apps.concurrency.services import concurrency_limit_create
from apps.flows.models import Flow
from apps.flows.services import flow_get_or_create
from apps.orchestration import engine
from apps.runs import services as run_services
from apps.runs.models import TaskRun
from apps.work_pools.services import work_pool_create
from orchestrator.states import Failed, Pending, Running
from tests.support.server import sqlite_pass_only
from tests.support.users import user_with_role
from tests.work_pools.conftest import scheduled_run

# The panel's HTML does not depend on the database engine (tests/work_pools/test_waiting.py covers the reads).
pytestmark = [pytest.mark.django_db, sqlite_pass_only]


@pytest.fixture
def flow(db) -> Flow:
    return flow_get_or_create(name="waiting-panel")[0]


@pytest.fixture
def viewer(db, client: Client) -> Client:
    client.force_login(user_with_role("watcher", VIEWER))
    return client


def test_a_waiting_run_shows_its_reasons_with_links_to_the_holders_and_the_pools(viewer, flow):
    """A Viewer sees what holds the run: the full pool with the run holding its slot, linked."""
    work_pool_create(name="tight", concurrency_limit=1, paused=True)
    busy = scheduled_run(flow, pool="tight", name="busy-run")
    for state in (Pending(), Running()):
        engine.propose_state(kind=engine.FLOW_RUN, run_id=busy.id, state=state)
    run = scheduled_run(flow, pool="tight")
    html = viewer.get(f"/ui/flow-runs/{run.id}/").content.decode()
    panel = html.split('data-testid="run-waiting"')[1].split("</div>")[0]
    assert "Why is this run waiting?" in panel
    assert '<li data-code="pool_paused">' in panel and '<li data-code="pool_concurrency_full">' in panel
    assert f'<a href="/ui/flow-runs/{busy.id}/">busy-run</a> (Running)' in panel
    assert 'href="/ui/work-pools/"' in panel
    part = viewer.get(f"/ui/flow-runs/{run.id}/part/waiting/").content.decode()
    assert part.split('data-testid="run-waiting"')[1].split("</div>")[0] == panel

    with CaptureQueriesContext(connection) as captured:
        viewer.get(f"/ui/flow-runs/{run.id}/part/waiting/")
    assert len(captured) <= 12  # the session, the user, the run and a handful of reads for the reasons

    busy_page = viewer.get(f"/ui/flow-runs/{busy.id}/").content.decode()
    assert 'data-testid="run-waiting"' not in busy_page and 'data-waiting="0"' in busy_page


def test_the_task_runs_table_says_what_holds_a_waiting_task_run(viewer, flow):
    """A task run held by a full tag limit, or awaiting its retry, says so in its row; the others say nothing."""
    concurrency_limit_create(tag="db", limit=1)
    run = scheduled_run(flow, pool=None)
    for state in (Pending(), Running()):
        engine.propose_state(kind=engine.FLOW_RUN, run_id=run.id, state=state)

    def task_run(key: str, **kwargs) -> TaskRun:
        return run_services.task_run_create(flow_run=run, task_key=key, name=key, state=Pending(), **kwargs)[0]

    holder, held, free = task_run("holder", tags=["db"]), task_run("held", tags=["db"]), task_run("free")
    engine.propose_state(kind=engine.TASK_RUN, run_id=holder.id, state=Running())
    assert engine.propose_state(kind=engine.TASK_RUN, run_id=held.id, state=Running()).status == "WAIT"
    retried = task_run("flaky", empirical_policy={"retries": 1, "retry_delay": 60})
    engine.propose_state(kind=engine.TASK_RUN, run_id=retried.id, state=Running())
    engine.propose_state(kind=engine.TASK_RUN, run_id=retried.id, state=Failed())

    html = viewer.get(f"/ui/flow-runs/{run.id}/part/task-runs/").content.decode()
    rows = {row_id: row for row_id, row in re.findall(r'<tr data-id="([^"]+)".*?(</td>.*?)</tr>', html, re.S)}
    assert "waiting: tag &#x27;db&#x27; limit full (1 running)" in rows[str(held.id)]
    assert "waiting: awaiting its retry" in rows[str(retried.id)]
    assert "waiting:" not in rows[str(holder.id)] + rows[str(free.id)]

"""Listing flow runs and task runs: every filter SPEC §7 names, ordering, and limit/offset pagination."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.deployments.models import Deployment
from apps.flows.services import flow_get_or_create
from apps.orchestration import engine
from apps.runs import services
from orchestrator.states import Completed, Failed, Running, Scheduled
from tests.api.support import assert_error

DEPLOYMENT = uuid.UUID("00000000-0000-4000-8000-00000000d001")


@pytest.fixture
def runs(db):
    """Five flow runs spread over states, flows, tags, pools, a deployment, a parent and start times."""
    now = timezone.now()
    etl = flow_get_or_create(name="etl")[0]
    report = flow_get_or_create(name="report")[0]
    Deployment.objects.create(id=DEPLOYMENT, flow=etl, name="nightly")

    def create(flow, name, tags, state=None, **extra):
        return services.flow_run_create(flow=flow, name=name, tags=tags, state=state, **extra)[0]

    def move(run, *states):
        for state in states:
            engine.propose_state(kind=engine.FLOW_RUN, run_id=run.id, state=state)

    alpha = create(
        etl, "alpha-load", ["etl", "nightly"], Scheduled(scheduled_time=now + timedelta(hours=1)),
        work_pool_name="pool-a", deployment_id=DEPLOYMENT,
    )  # fmt: skip
    beta = create(etl, "beta-load", ["etl"], work_pool_name="pool-a")
    move(beta, Running())
    gamma = create(report, "gamma-report", ["nightly"], Scheduled(scheduled_time=now + timedelta(hours=2)),
                   work_pool_name="pool-b")  # fmt: skip
    parent_task = services.task_run_create(flow_run=beta, task_key="call-child")[0]
    delta = create(etl, "delta-child", [], parent_task_run=parent_task)
    move(delta, Running(), Failed(message="boom"))
    epsilon = create(report, "epsilon-done", ["etl", "nightly", "weekly"])
    move(epsilon, Running(), Completed())
    return {
        "now": now,
        "etl": etl,
        "parent_task": parent_task,
        "runs": {run.name: run for run in (alpha, beta, gamma, delta, epsilon)},
    }


def names(api, path: str, params: dict) -> set[str]:
    response = api.get(path, params)
    assert response.status_code == 200, response.content
    return {run["name"] for run in response.json()["results"]}


FLOW_RUN_FILTERS = [
    ({"state_type": "SCHEDULED"}, {"alpha-load", "gamma-report"}),
    ({"state_type": "RUNNING,FAILED"}, {"beta-load", "delta-child"}),
    ({"state_type": " COMPLETED , RUNNING "}, {"beta-load", "epsilon-done"}),
    ({"state_name": "Failed"}, {"delta-child"}),
    ({"state_name": "Scheduled,Completed"}, {"alpha-load", "gamma-report", "epsilon-done"}),
    ({"flow_name": "report"}, {"gamma-report", "epsilon-done"}),
    ({"work_pool": "pool-a"}, {"alpha-load", "beta-load"}),
    ({"deployment": str(DEPLOYMENT)}, {"alpha-load"}),
    ({"tags": "etl"}, {"alpha-load", "beta-load", "epsilon-done"}),
    ({"tags": "etl,nightly"}, {"alpha-load", "epsilon-done"}),
    ({"tags": "nightly,weekly,etl"}, {"epsilon-done"}),
    ({"tags": "absent"}, set()),
    ({"name__icontains": "LOAD"}, {"alpha-load", "beta-load"}),
    ({"name__icontains": "'; DROP TABLE runs_flowrun; --"}, set()),
    ({"name__icontains": "📊 تقرير"}, set()),
    ({"state_type": "SCHEDULED", "tags": "nightly", "flow_name": "etl"}, {"alpha-load"}),
]


@pytest.mark.parametrize(("params", "expected"), FLOW_RUN_FILTERS, ids=[str(p) for p, _ in FLOW_RUN_FILTERS])
def test_flow_run_filters_select_the_matching_runs(api, runs, params, expected):
    """Each filter the UI and CLI send narrows the list to exactly the runs that match (combined with AND)."""
    assert names(api, "/api/flow_runs/", params) == expected


def test_filter_by_flow_id(api, runs):
    """`flow` takes the flow's id."""
    assert names(api, "/api/flow_runs/", {"flow": str(runs["etl"].id)}) == {"alpha-load", "beta-load", "delta-child"}


def test_filter_by_parent_task_run_finds_subflows(api, runs):
    """The run page lists the subflows a task run started."""
    assert names(api, "/api/flow_runs/", {"parent_task_run": str(runs["parent_task"].id)}) == {"delta-child"}


def test_filter_by_expected_start_time_window(api, runs):
    """The dashboard's "upcoming" panel asks for runs expected in a time window."""
    now = runs["now"]
    upcoming = {
        "expected_start_time__gte": (now + timedelta(minutes=30)).isoformat(),
        "expected_start_time__lte": (now + timedelta(minutes=90)).isoformat(),
    }
    assert names(api, "/api/flow_runs/", upcoming) == {"alpha-load"}
    later = {"expected_start_time__gte": (now + timedelta(minutes=30)).isoformat()}
    assert names(api, "/api/flow_runs/", later) == {"alpha-load", "gamma-report"}
    zulu = {"expected_start_time__gte": (now + timedelta(minutes=90)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert names(api, "/api/flow_runs/", zulu) == {"gamma-report"}


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("name", ["alpha-load", "beta-load", "delta-child", "epsilon-done", "gamma-report"]),
        ("-name", ["gamma-report", "epsilon-done", "delta-child", "beta-load", "alpha-load"]),
        ("-expected_start_time", ["gamma-report", "alpha-load"]),
    ],
)
def test_ordering(api, runs, ordering, expected):
    """`ordering=field` and `-field` sort the list."""
    params = {"ordering": ordering}
    if "expected_start_time" in ordering:
        params["state_type"] = "SCHEDULED"
    response = api.get("/api/flow_runs/", params)
    assert [run["name"] for run in response.json()["results"]] == expected


def test_default_order_is_newest_first(api, runs):
    """Without ordering, the newest run comes first."""
    results = api.get("/api/flow_runs/").json()["results"]
    assert results[0]["name"] == "epsilon-done"
    assert [run["created"] for run in results] == sorted((run["created"] for run in results), reverse=True)


def test_following_next_links_visits_every_run_once(api, runs):
    """Clients page with limit/offset by following `next` until it is null; nothing is skipped or repeated."""
    seen, pages = [], 0
    url = "/api/flow_runs/?limit=2"
    previous_of_first = None
    while url:
        body = api.get(url).json()
        assert set(body) == {"next", "previous", "results"}
        assert len(body["results"]) <= 2
        if pages == 0:
            previous_of_first = body["previous"]
        seen.extend(run["id"] for run in body["results"])
        url = body["next"]
        pages += 1
    assert pages == 3
    assert previous_of_first is None
    assert len(seen) == len(set(seen)) == 5


def test_previous_link_returns_to_the_earlier_page(api, runs):
    """`previous` goes back one page."""
    first = api.get("/api/flow_runs/?limit=2").json()
    second = api.get(first["next"]).json()
    back = api.get(second["previous"]).json()
    assert [run["id"] for run in back["results"]] == [run["id"] for run in first["results"]]


def test_pagination_keeps_filters_in_links(api, runs):
    """A filtered list's next page stays filtered."""
    body = api.get("/api/flow_runs/", {"tags": "etl", "limit": 1}).json()
    assert "tags=etl" in body["next"]
    second = api.get(body["next"]).json()
    assert second["results"][0]["name"] in {"alpha-load", "beta-load", "epsilon-done"}


def test_an_offset_past_the_end_is_an_empty_page(api, runs):
    """Paging too far is not an error."""
    body = api.get("/api/flow_runs/?offset=1000").json()
    assert body["results"] == []
    assert body["next"] is None


def test_a_limit_above_the_maximum_is_capped(api, runs, settings):
    """Clients asking for a huge page get the largest allowed page instead of an error."""
    settings.API_MAX_PAGE_SIZE = 3
    body = api.get("/api/flow_runs/?limit=1000000").json()
    assert len(body["results"]) == 3
    assert "limit=3" in body["next"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state_type": "BOGUS"}, "state_type"),
        ({"state_type": "RUNNING,running"}, "state_type"),
        ({"flow": "not-a-uuid"}, "flow"),
        ({"deployment": "1; DROP TABLE x"}, "deployment"),
        ({"parent_task_run": "123"}, "parent_task_run"),
        ({"expected_start_time__gte": "yesterday"}, "expected_start_time__gte"),
        ({"expected_start_time__lte": "2024-02-30T00:00:00Z"}, "expected_start_time__lte"),
    ],
)
def test_invalid_filter_values_are_400_naming_the_filter(api, runs, params, field):
    """A typo in a filter is reported, not silently ignored (which would return the wrong runs)."""
    assert_error(api.get("/api/flow_runs/", params), 400, code="invalid_input", field=field)


def test_task_runs_filter_by_flow_run_state_and_tags(api, flow_run):
    """The run page lists a flow run's task runs; filters narrow them by state and tags."""
    other = services.flow_run_create(flow=flow_run.flow)[0]
    first = services.task_run_create(flow_run=flow_run, task_key="a", tags=["db", "slow"])[0]
    second = services.task_run_create(flow_run=flow_run, task_key="b", tags=["db"])[0]
    services.task_run_create(flow_run=other, task_key="c", tags=["db"])
    engine.propose_state(kind=engine.TASK_RUN, run_id=second.id, state=Running())

    def task_keys(params):
        response = api.get("/api/task_runs/", params)
        assert response.status_code == 200, response.content
        return sorted(run["task_key"] for run in response.json()["results"])

    assert task_keys({"flow_run": str(flow_run.id)}) == ["a", "b"]
    assert task_keys({"flow_run": str(flow_run.id), "state_type": "RUNNING"}) == ["b"]
    assert task_keys({"state_name": "Pending"}) == ["a", "c"]
    assert task_keys({"tags": "db,slow"}) == ["a"]
    assert task_keys({"tags": "db"}) == ["a", "b", "c"]
    assert api.get("/api/task_runs/", {"tags": "db", "ordering": "created"}).json()["results"][0]["id"] == str(first.id)
    body = api.get("/api/task_runs/", {"flow_run": str(flow_run.id), "limit": 1}).json()
    assert len(body["results"]) == 1 and body["next"]
    assert_error(api.get("/api/task_runs/", {"flow_run": "nope"}), 400, field="flow_run")
    assert_error(api.get("/api/task_runs/", {"state_type": "DONE"}), 400, field="state_type")

"""The deployments API (SPEC §7): upsert, schedules, ad hoc runs, pause and resume, filters, and bad input."""

from __future__ import annotations

import json
import uuid

import pytest

from apps.deployments.models import Deployment
from apps.flows.models import Flow
from apps.runs.models import FlowRun
from tests.api.support import assert_error
from tests.deployments.conftest import deployment_body, scheduled_runs

pytestmark = pytest.mark.django_db


def create(api, **changes):
    return api.post("/api/deployments/", deployment_body(**changes), format="json")


def test_posting_a_new_deployment_creates_it_with_its_schedule_and_upcoming_runs(api) -> None:
    """A deploy is one request: the deployment, its flow (by name), its schedules and the runs ahead."""
    response = create(api)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["flow_name"] == "etl" and body["name"] == "nightly"
    assert body["entrypoint"] == "flows/etl.py:etl" and body["work_pool_name"] == "local"
    assert body["parameters"] == {"limit": 5} and body["paused"] is False
    assert body["collision_strategy"] == "ENQUEUE" and body["concurrency_limit"] is None
    assert [item["schedule"]["interval"] for item in body["schedules"]] == [3600]
    runs = scheduled_runs(body["id"])
    assert 24 <= len(runs) <= 25  # the one-day horizon, hourly
    assert all(run.work_pool_name == "local" and run.parameters == {"limit": 5} for run in runs)


def test_posting_the_same_flow_and_name_again_updates_it(api) -> None:
    """Redeploying is an upsert: 200, the same id, the new values, fields not sent kept."""
    first = create(api).json()
    response = api.post(
        "/api/deployments/", {"flow_name": "etl", "name": "nightly", "description": "v2"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == first["id"] and body["description"] == "v2"
    assert body["work_pool_name"] == "local" and len(body["schedules"]) == 1
    assert Deployment.objects.count() == 1


def test_a_deployment_can_name_its_flow_by_id(api, flow) -> None:
    """Clients holding a flow id use it; an unknown id is a 404 naming `flow`."""
    body = deployment_body(flow=str(flow.id))
    del body["flow_name"]
    assert api.post("/api/deployments/", body, format="json").status_code == 201
    body["flow"] = str(uuid.uuid4())
    assert_error(api.post("/api/deployments/", body, format="json"), 404, field="flow")


def test_a_deployment_needs_exactly_one_of_flow_and_flow_name(api, flow) -> None:
    """Both or neither is ambiguous."""
    assert_error(api.post("/api/deployments/", {"name": "x"}, format="json"), 400, field="flow")
    both = {"name": "x", "flow": str(flow.id), "flow_name": "etl"}
    assert_error(api.post("/api/deployments/", both, format="json"), 400, field="flow")


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        ({"cron": "not a cron"}, "schedules[0].schedule.cron"),
        ({"cron": "0 2 * * *", "timezone": "Nowhere/City"}, "schedules[0].schedule.timezone"),
        ({"rrule": "FREQ=NEVER"}, "schedules[0].schedule.rrule"),
        ({"interval": -1}, "schedules[0].schedule.interval"),
        ({"interval": "hourly"}, "schedules[0].schedule.interval"),
        ({"interval": 60, "anchor_date": "soon"}, "schedules[0].schedule.anchor_date"),
        ({"interval": 60, "cron": "* * * * *"}, "schedules[0].schedule"),
        ("0 2 * * *", "schedules[0].schedule"),
    ],
)
def test_bad_schedules_are_a_400_naming_the_field(api, schedule, field) -> None:
    """A typo in a cron line must come back as a readable error on that field, and nothing is saved."""
    response = create(api, schedules=[{"schedule": schedule}])
    assert_error(response, 400, field=field)
    assert not Deployment.objects.exists() and not FlowRun.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"parameters": {"limit": "many"}}, "parameters.limit"),
        ({"parameters": {"unknown": 1}}, "parameters"),
        ({"parameters": {"options": {"dry": "yes"}}}, "parameters.options.dry"),
        ({"parameter_openapi_schema": {"type": "no-such-type"}}, "parameter_openapi_schema"),
        ({"parameters": []}, "parameters"),
        ({"name": "a/b"}, "name"),
        ({"name": "nul\x00"}, "name"),
        ({"work_pool_name": "x" * 201}, "work_pool_name"),
        ({"concurrency_limit": 0}, "concurrency_limit"),
        ({"collision_strategy": "DROP"}, "collision_strategy"),
        ({"tags": ["a,b"]}, "tags"),
        ({"schedules": [{"schedule": {"interval": 60}, "active": "maybe"}]}, "schedules[0].active"),
        ({"schedules": [{"schedule": {"interval": 60}, "surprise": 1}]}, "schedules[0].surprise"),
        ({"empirical_policy": {"retries": -1}}, "empirical_policy.retries"),
        ({"empirical_policy": {"retry_delay": "soon"}}, "empirical_policy.retry_delay"),
        ({"surprise": True}, "surprise"),
        ({"storage_block": "remote-file-system/code", "storage_path": "../../etc"}, "storage_path"),
        ({"storage_path": "0123456789abcdef"}, "storage_path"),  # a code prefix names no storage without its block
    ],
)
def test_bad_deployment_fields_are_a_400_naming_the_field(api, changes, field) -> None:
    """Strict input like the rest of the API: wrong types, unknown fields and defaults that break the schema."""
    assert_error(create(api, **changes), 400, field=field)
    assert not Deployment.objects.exists()
    assert not Flow.objects.exists()  # refused before the flow named by flow_name is created


def test_a_nul_character_anywhere_in_the_body_is_a_400_not_a_500(api) -> None:
    """PostgreSQL cannot store NUL; the parser refuses it before anything is written."""
    raw = b'{"flow_name": "etl", "name": "x", "description": "a\\u0000b"}'
    response = api.post("/api/deployments/", raw, content_type="application/json")
    assert_error(response, 400)


def test_create_flow_run_returns_a_scheduled_run_with_merged_parameters(api) -> None:
    """An ad hoc run starts from the deployment's defaults, overridden by the request."""
    deployment = create(api).json()
    response = api.post(
        f"/api/deployments/{deployment['id']}/create_flow_run/",
        {"parameters": {"day": "2026-01-01"}, "tags": ["manual"]},
        format="json",
    )
    assert response.status_code == 201, response.content
    run = response.json()
    assert run["state_type"] == "SCHEDULED" and run["state_name"] == "Scheduled"
    assert run["deployment"] == deployment["id"] and run["work_pool_name"] == "local"
    assert run["parameters"] == {"limit": 5, "day": "2026-01-01"}
    assert set(run["tags"]) == {"etl", "manual"}
    assert FlowRun.objects.get(pk=run["id"]).auto_scheduled is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"parameters": {}}, "parameters.day"),
        ({"parameters": {"day": 20260101}}, "parameters.day"),
        ({"parameters": {"day": "x", "limit": 1.5}}, "parameters.limit"),
        ({"parameters": {"day": "x"}, "scheduled_time": "tomorrow"}, "scheduled_time"),
        ({"parameters": {"day": "x"}, "whatever": 1}, "whatever"),
    ],
)
def test_create_flow_run_checks_overrides_against_the_schema(api, body, field) -> None:
    """A bad parameter fails the request, naming it, instead of failing the run later on a worker."""
    deployment = create(api).json()
    before = FlowRun.objects.count()
    response = api.post(f"/api/deployments/{deployment['id']}/create_flow_run/", body, format="json")
    assert_error(response, 400, field=field)
    assert FlowRun.objects.count() == before


def test_schedules_endpoint_lists_adds_and_deletes_schedules(api) -> None:
    """Schedules are managed on their own too; deleting one removes its future runs."""
    deployment = create(api, schedules=[]).json()
    url = f"/api/deployments/{deployment['id']}/schedules/"
    assert api.get(url).json() == []
    added = api.post(url, {"schedule": {"cron": "0 * * * *"}}, format="json")
    assert added.status_code == 201, added.content
    schedule_id = added.json()["id"]
    assert [row["id"] for row in api.get(url).json()] == [schedule_id]
    assert len(scheduled_runs(deployment["id"])) >= 24
    assert_error(api.post(url, {"schedule": {"cron": "0 25 * * *"}}, format="json"), 400, field="schedule.cron")
    patched = api.patch(f"{url}{schedule_id}/", {"active": False}, format="json")
    assert patched.status_code == 200 and patched.json()["active"] is False
    assert scheduled_runs(deployment["id"]) == []
    assert api.delete(f"{url}{schedule_id}/").status_code == 204
    assert api.get(url).json() == []
    assert_error(api.delete(f"{url}{uuid.uuid4()}/"), 404)


def test_pause_removes_future_runs_and_resume_recreates_them(api) -> None:
    """Pausing must stop runs from being picked up; resuming brings the schedule back."""
    deployment = create(api).json()
    assert scheduled_runs(deployment["id"])
    paused = api.post(f"/api/deployments/{deployment['id']}/pause/")
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert scheduled_runs(deployment["id"]) == []
    resumed = api.post(f"/api/deployments/{deployment['id']}/resume/")
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    assert len(scheduled_runs(deployment["id"])) >= 24


def test_deployment_list_filters(api) -> None:
    """Every filter the list offers narrows it."""
    create(api)
    create(api, name="weekly", work_pool_name="big", tags=["etl", "weekly"], paused=True)
    create(api, flow_name="report", name="daily", tags=[])

    def names(**params) -> set[str]:
        response = api.get("/api/deployments/", params)
        assert response.status_code == 200, response.content
        return {row["name"] for row in response.json()["results"]}

    assert names() == {"nightly", "weekly", "daily"}
    assert names(flow_name="etl") == {"nightly", "weekly"}
    assert names(name="daily") == {"daily"}
    assert names(paused="true") == {"weekly"}
    assert names(work_pool_name="big") == {"weekly"}
    assert names(tags="etl,weekly") == {"weekly"}
    etl = Deployment.objects.get(name="nightly").flow_id
    assert names(flow=str(etl)) == {"nightly", "weekly"}
    assert_error(api.get("/api/deployments/", {"flow": "nope"}), 400, field="flow")


def test_patch_and_delete_a_deployment(api) -> None:
    """PATCH changes fields (and reschedules); DELETE removes it and its waiting runs, keeping past runs."""
    deployment = create(api).json()
    url = f"/api/deployments/{deployment['id']}/"
    patched = api.patch(url, {"work_pool_name": "other"}, format="json")
    assert patched.status_code == 200 and patched.json()["work_pool_name"] == "other"
    assert {run.work_pool_name for run in scheduled_runs(deployment["id"])} == {"other"}
    assert_error(api.patch(url, {"name": "renamed"}, format="json"), 400, field="name")
    manual = api.post(f"{url}create_flow_run/", {"parameters": {"day": "d"}}, format="json").json()
    assert api.delete(url).status_code == 204
    assert not FlowRun.objects.filter(auto_scheduled=True).exists()
    assert FlowRun.objects.get(pk=manual["id"]).deployment_id is None  # the past stays, unlinked
    assert_error(api.get(url), 404)


def test_flow_run_create_with_an_unknown_deployment_is_a_404(api, flow) -> None:
    """The run's deployment is a foreign key now: an unknown id is refused, naming the field."""
    response = api.post("/api/flow_runs/", {"flow": str(flow.id), "deployment": str(uuid.uuid4())}, format="json")
    assert_error(response, 404, field="deployment")


def test_flow_run_list_filters_by_deployment(api) -> None:
    """`?deployment=` on the run list shows a deployment's runs (the UI's upcoming runs)."""
    deployment = create(api).json()
    create(api, name="other")
    response = api.get("/api/flow_runs/", {"deployment": deployment["id"], "limit": 1000})
    runs = response.json()["results"]
    assert runs and {run["deployment"] for run in runs} == {deployment["id"]}


HOSTILE_BODIES = [
    [],
    "text",
    1,
    None,
    {"parameters": {"limit": 2**70}},
    {"parameters": {"day": "x" * 100_000}},
    {"schedules": "hourly"},
    {"schedules": [None]},
    {"schedules": [[]]},
    {"schedules": [{"schedule": {"interval": 1e308}}]},
    {"schedules": [{"schedule": {"interval": 60, "anchor_date": "9999-12-31T23:59:59-14:00"}}]},
    {"schedules": [{"schedule": {"cron": "\u0000"}}]},
    {"schedules": [{"schedule": {"rrule": "FREQ=DAILY;UNTIL=99999999T999999"}}]},
    {"schedules": [{"schedule": {"rrule": "FREQ=YEARLY;BYMONTH=13"}}]},
    {"schedules": [{"schedule": {"cron": "0 2 * * *", "timezone": "\ud800"}}]},
    {"schedules": [{"schedule": {"cron": "0 2 * * *"}}] * 101},
    {"parameter_openapi_schema": {"$ref": "http://127.0.0.1:9/schema.json"}, "parameters": {"a": 1}},
    {"parameter_openapi_schema": {"properties": {"a": {"$ref": "#/$defs/missing"}}}, "parameters": {"a": 1}},
    {"scheduled_time": "+275760-09-13T00:00:00Z", "parameters": {"day": "x"}},
    {"name": "x" * 1000},
    {"tags": [None]},
]


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
def test_hostile_bodies_get_a_json_error_never_a_500(api, body) -> None:
    """Whatever a client sends to any deployment endpoint, the answer is a readable 4xx."""
    deployment = create(api).json()
    schedule_id = deployment["schedules"][0]["id"]
    base = f"/api/deployments/{deployment['id']}"
    for method, url in (
        ("post", "/api/deployments/"),
        ("patch", f"{base}/"),
        ("post", f"{base}/create_flow_run/"),
        ("post", f"{base}/schedules/"),
        ("patch", f"{base}/schedules/{schedule_id}/"),
    ):
        payload = {**deployment_body(), **body} if isinstance(body, dict) and url.endswith("deployments/") else body
        # json.dumps escapes a lone surrogate as \ud800, as a real client would send it.
        response = api.generic(method.upper(), url, json.dumps(payload), content_type="application/json")
        assert response.status_code < 500, (method, url, response.content[:300])
        if response.status_code >= 400:
            assert_error(response, response.status_code)

"""The overview pages under /ui/ (dashboard, flows, deployments, work pools, concurrency) through Django's test
client with a logged-in superuser: each renders its data, the Run form creates runs through the service,
Pause/Resume go through the services. Who may see and do what: tests/ui/test_roles.py."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.concurrency.services import concurrency_limit_create
from apps.deployments.models import Deployment
from apps.deployments.services import deployment_upsert, mark_late_runs
from apps.flows.services import flow_get_or_create
from apps.orchestration import engine
from apps.runs import services as run_services
from apps.runs.models import FlowRun
from apps.ui import overview
from apps.ui.schedule_words import describe_schedule
from apps.work_pools.models import WorkPool
from apps.work_pools.services import work_pool_create, work_queue_create, worker_heartbeat
from orchestrator.states import Completed, Crashed, Failed, Pending, Running, Scheduled
from tests.concurrency.support import slots_of

pytestmark = pytest.mark.django_db

PARAMETER_SCHEMA = {
    "type": "object",
    "properties": {
        "day": {"title": "day", "type": "string", "position": 0},
        "limit": {"title": "limit", "type": "integer", "minimum": 1, "default": 10, "position": 1},
        "ratio": {"title": "ratio", "type": "number", "position": 2},
        "mode": {"title": "mode", "enum": ["fast", "slow"], "type": "string", "default": "slow", "position": 3},
        "dry": {"title": "dry", "type": "boolean", "default": True, "position": 4},
        "items": {"title": "items", "type": "array", "items": {"type": "integer"}, "position": 5},
        "options": {"title": "options", "type": "object", "position": 6},
        "note": {"title": "note", "anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "position": 7},
        "extra": {"title": "extra", "position": 8},  # any JSON value
    },
    "required": ["day", "limit"],
}


@pytest.fixture
def admin_client(client):
    """A logged-in staff user (without a password: hashing one costs a second per test)."""
    user = User(username="staff", is_staff=True, is_superuser=True)
    user.set_unusable_password()
    user.save()
    client.force_login(user)
    return client


def make_deployment(name: str = "nightly", **values) -> Deployment:
    flow, _ = flow_get_or_create(name="etl")
    values = {
        "parameters": {"limit": 5},
        "parameter_openapi_schema": PARAMETER_SCHEMA,
        "work_pool_name": "local",
        "tags": ["etl"],
        **values,
    }
    schedules = [
        {"schedule": {"cron": "0 9 * * 1", "timezone": "UTC", "day_or": True}, "active": True},
        {"schedule": {"interval": 3600, "anchor_date": "2020-01-01T00:00:00+00:00", "timezone": "UTC"}, "active": True},
    ]
    deployment, _ = deployment_upsert(flow=flow, name=name, values=values, schedules=schedules)
    return deployment


def run_in(state, *, flow_name: str = "etl", **kwargs) -> FlowRun:
    flow, _ = flow_get_or_create(name=flow_name)
    run, _ = run_services.flow_run_create(flow=flow, state=Pending(), **kwargs)
    for step in ([Running()] if state.type != "PENDING" else []) + ([state] if state.type != "RUNNING" else []):
        result = engine.propose_state(kind=engine.FLOW_RUN, run_id=run.id, state=step, force=True)
        assert result.accepted, result
    run.refresh_from_db()
    return run


def text_of(response) -> str:
    return response.content.decode()


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        ({"interval": 300}, "every 5 minutes"),
        ({"interval": 3600, "timezone": "Europe/Berlin"}, "every hour (Europe/Berlin)"),
        ({"interval": 86400 * 2}, "every 2 days"),
        ({"interval": 90}, "every 90 seconds"),
        ({"cron": "* * * * *"}, "every minute"),
        ({"cron": "*/15 * * * *"}, "every 15 minutes"),
        ({"cron": "30 * * * *"}, "every hour at minute 30"),
        ({"cron": "0 */6 * * *"}, "every 6 hours"),
        ({"cron": "0 9 * * 1"}, "at 09:00 on Monday"),
        ({"cron": "30 2 * * *", "timezone": "Europe/Berlin"}, "at 02:30 every day (Europe/Berlin)"),
        ({"cron": "0 8 * * 1-5"}, "at 08:00 on Monday to Friday"),
        ({"cron": "0 8,17 * * sat,sun"}, "at 08:00 and 17:00 on Saturday and Sunday"),
        ({"cron": "0 0 1 * *"}, "at 00:00 on day 1 of every month"),
        ({"cron": "0 12 25 12 *"}, "at 12:00 on 25 December"),
        ({"cron": "@daily"}, "at 00:00 every day"),
        ({"cron": "5 4 */2 * *"}, "cron 5 4 */2 * *"),  # not a common shape: the expression itself
        ({"rrule": "FREQ=DAILY;BYHOUR=2;BYMINUTE=30"}, "every day at 02:30"),
        ({"rrule": "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR,MO;BYHOUR=9"}, "every 2 weeks on Monday and Friday at 09:00"),
        ({"rrule": "DTSTART:20260101T063000\nRRULE:FREQ=DAILY;COUNT=5"}, "every day at 06:30, 5 times"),
        ({"rrule": "FREQ=HOURLY;INTERVAL=3"}, "every 3 hours"),
        ({"rrule": "FREQ=MONTHLY;BYMONTHDAY=1,15"}, "rrule FREQ=MONTHLY;BYMONTHDAY=1,15"),
    ],
)
def test_schedules_in_words(schedule, words):
    """People read "every 5 minutes", not `interval: 300`; shapes the describer does not know show the rule."""
    assert describe_schedule(schedule) == words


def test_the_dashboard_shows_runs_by_state_warnings_upcoming_runs_and_worker_health(
    admin_client, django_assert_max_num_queries
):
    """The first page an operator opens: what ran, what is wrong (Late, Failed, Crashed), what comes next, and
    whether the pools have live workers."""
    completed = run_in(Completed(), flow_name="etl")
    failed = run_in(Failed(message="boom: division by zero"))
    crashed = run_in(Crashed(message="worker died"))
    flow, _ = flow_get_or_create(name="etl")
    late, _ = run_services.flow_run_create(
        flow=flow, state=Scheduled(scheduled_time=timezone.now() - timedelta(minutes=10))
    )
    assert mark_late_runs() == 1
    deployment = make_deployment()  # its schedules create the upcoming runs
    pool = WorkPool.objects.get(name="local")
    worker_heartbeat(pool=pool, name="fresh-worker")
    worker_heartbeat(pool=pool, name="stale-worker", now=timezone.now() - timedelta(hours=1))

    with django_assert_max_num_queries(12):
        response = admin_client.get("/ui/")

    assert response.status_code == 200
    page = text_of(response)
    bars = re.findall(r'<rect class="bar bar-(\w+)"', page)
    assert {"COMPLETED", "FAILED", "CRASHED", "SCHEDULED"} <= set(bars), bars
    assert "1 Completed" in page  # a bar's tooltip
    assert f'href="/ui/flow-runs/{late.id}/"' in page and "Late runs" in page
    assert f'href="/ui/flow-runs/{failed.id}/"' in page and "boom: division by zero" in page
    assert f'href="/ui/flow-runs/{crashed.id}/"' in page
    assert f'href="/ui/flow-runs/{completed.id}/"' not in page  # a completed run is no warning
    upcoming = re.search(r'data-testid="upcoming-runs".*?</section>', page, re.S).group(0)
    assert upcoming.count('href="/ui/flow-runs/') == 10 and f"/ui/deployments/{deployment.id}/" in upcoming
    assert "fresh-worker: online" in page and "stale-worker: offline" in page

    # More data, same number of queries: nothing is fetched per row.
    for index in range(5):
        run_in(Failed(), flow_name=f"other-{index}")
        worker_heartbeat(pool=work_pool_create(name=f"pool-{index}"), name=f"w-{index}")
    with django_assert_max_num_queries(12):
        assert admin_client.get("/ui/").status_code == 200


def test_runs_by_hour_puts_each_run_in_its_hour_and_state(db):
    """The chart's counts: by expected start time, per state type, the last 24 hours only (one statement)."""
    now = timezone.now()
    flow, _ = flow_get_or_create(name="etl")

    def at(hours_ago: float, final=None) -> None:
        moment = now - timedelta(hours=hours_ago)
        run, _ = run_services.flow_run_create(flow=flow, state=Scheduled(scheduled_time=moment))
        if final is not None:
            for state in (Pending(), Running(), final):
                engine.propose_state(kind=engine.FLOW_RUN, run_id=run.id, state=state, force=True)

    at(5, Completed())
    at(5, Completed())
    at(5, Failed())
    at(1.5)  # still Scheduled (late): counted as SCHEDULED
    at(30, Completed())  # older than the chart
    at(-2)  # ahead: not on the chart

    with CaptureQueriesContext(connection) as queries:
        counts = overview.runs_by_hour(now=now)

    assert len(queries.captured_queries) == 1
    assert len(counts.hours) == 24 and counts.hours[-1] <= now < counts.hours[-1] + timedelta(hours=1)

    def hour_of(hours_ago: float) -> int:
        moment = now - timedelta(hours=hours_ago)
        return next(index for index, start in enumerate(counts.hours) if start <= moment < start + timedelta(hours=1))

    assert counts.counts["COMPLETED"][hour_of(5)] == 2 and counts.counts["FAILED"][hour_of(5)] == 1
    assert counts.counts["SCHEDULED"][hour_of(1.5)] == 1
    assert counts.total == 4


def test_the_flows_page_lists_flows_with_deployments_and_last_run_state(admin_client, django_assert_max_num_queries):
    deployment = make_deployment()
    run_in(Completed())
    newest = run_in(Failed())
    flow_get_or_create(name="never-run")

    with django_assert_max_num_queries(8):
        response = admin_client.get("/ui/flows/")

    page = text_of(response)
    assert response.status_code == 200
    etl_row = re.search(r'<tr data-testid="flow-row".*?</tr>', page, re.S).group(0)
    assert f'href="/ui/deployments/{deployment.id}/">nightly' in etl_row
    assert f'href="/ui/flow-runs/{newest.id}/"' in etl_row and "state-FAILED" in etl_row
    assert "never-run" in page and "never run" in page


def test_deployments_show_schedules_in_words_next_runs_and_recent_runs(admin_client, django_assert_max_num_queries):
    deployment = make_deployment()
    make_deployment(name="weekly")
    past = run_in(Completed(), deployment_id=deployment.id)

    with django_assert_max_num_queries(8):
        listing = admin_client.get("/ui/deployments/")
    page = text_of(listing)
    assert listing.status_code == 200
    assert "at 09:00 on Monday" in page and "every hour" in page
    assert f'href="/ui/deployments/{deployment.id}/"' in page and "local" in page
    next_time = (
        FlowRun.objects.filter(deployment=deployment, state_type="SCHEDULED")
        .order_by("expected_start_time")
        .first()
        .expected_start_time
    )
    assert f"{next_time:%Y-%m-%d %H:%M:%S}" in page

    detail = admin_client.get(f"/ui/deployments/{deployment.id}/")
    page = text_of(detail)
    assert detail.status_code == 200
    assert "at 09:00 on Monday" in page and "every hour" in page
    next_runs = re.search(r'data-testid="next-runs".*?</section>', page, re.S).group(0)
    assert next_runs.count('href="/ui/flow-runs/') == 5
    recent = re.search(r'data-testid="recent-runs".*?</section>', page, re.S).group(0)
    assert f'href="/ui/flow-runs/{past.id}/"' in recent and "state-COMPLETED" in recent
    assert 'data-testid="pause-deployment"' in page
    assert admin_client.get("/ui/deployments/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_the_run_form_is_generated_from_the_parameter_schema(admin_client):
    """Each parameter gets the input its type needs, with the deployment's default filled and required marked."""
    deployment = make_deployment()

    page = text_of(admin_client.get(f"/ui/deployments/{deployment.id}/"))

    assert re.search(r'<label for="id_parameters-day" class="required">day \*</label>', page)
    assert re.search(r'<input type="text" name="parameters-day"[^>]*required', page)
    # `limit` is required by the schema, but the deployment gives it (5): not required here, 5 filled in.
    assert re.search(r'<input type="number" name="parameters-limit" value="5"', page)
    assert '<label for="id_parameters-limit">' in page
    assert re.search(r'<input type="number" name="parameters-ratio" step="any"', page)
    assert re.search(r'<option value="&quot;slow&quot;" selected>slow</option>', page)
    assert re.search(r'<input type="checkbox" name="parameters-dry"[^>]*checked', page)
    assert re.search(r'<textarea name="parameters-items"', page) and re.search(
        r'<textarea name="parameters-options"', page
    )
    assert re.search(r'<input type="text" name="parameters-note"', page)  # Optional[str] is a text input


def test_bad_run_form_input_shows_field_errors_and_creates_nothing(admin_client):
    deployment = make_deployment()
    before = FlowRun.objects.count()

    # Text that is not of the field's kind: refused by the form.
    response = admin_client.post(
        f"/ui/deployments/{deployment.id}/run/",
        {"parameters-day": "", "parameters-limit": "many", "parameters-items": "[1,", "parameters-mode": '"slow"'},
    )
    assert response.status_code == 400
    page = text_of(response)
    assert re.search(r'id="id_parameters-day_error"><li>This field is required', page)
    assert re.search(r'id="id_parameters-limit_error"><li>Enter a whole number', page)
    assert re.search(r'id="id_parameters-items_error"><li>not valid JSON', page)
    assert 'value="many"' in page  # what was typed is shown again

    # Well-formed but against the schema: refused by parameters_validate in the service, shown on its field.
    response = admin_client.post(
        f"/ui/deployments/{deployment.id}/run/",
        {"parameters-day": "mon", "parameters-limit": "0", "parameters-items": "[1]", "parameters-mode": '"slow"'},
    )
    assert response.status_code == 400
    page = text_of(response)
    assert re.search(r'id="id_parameters-limit_error"><li>0 is less than the minimum of 1', page)
    response = admin_client.post(
        f"/ui/deployments/{deployment.id}/run/",
        {"parameters-day": "mon", "parameters-items": '[1, "a"]', "parameters-mode": '"slow"'},
    )
    assert re.search(
        r'id="id_parameters-items_error"><li>&#x27;a&#x27; is not of type &#x27;integer&#x27; \(at items\[1\]\)',
        text_of(response),
    )

    response = admin_client.post(
        f"/ui/deployments/{deployment.id}/run/",
        {"parameters-day": "mon", "parameters-items": '["a"]', "parameters-mode": '"slow"', "run-scheduled_time": "x"},
    )
    assert response.status_code == 400
    assert re.search(r'id="id_run-scheduled_time_error"><li>Enter a valid date/time', text_of(response))
    assert FlowRun.objects.count() == before


def test_good_run_form_input_creates_a_run_and_opens_its_page(admin_client):
    deployment = make_deployment()
    start = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)

    response = admin_client.post(
        f"/ui/deployments/{deployment.id}/run/",
        {
            "parameters-day": "mon",
            "parameters-limit": "3",
            "parameters-ratio": "0.5",
            "parameters-mode": '"fast"',
            "parameters-items": "[1, 2]",
            "parameters-options": '{"dry": false}',
            "parameters-note": "",
            "parameters-extra": "null",
            "run-tags": "adhoc, urgent",
            "run-scheduled_time": f"{start:%Y-%m-%dT%H:%M:%S}",
        },
    )

    run = FlowRun.objects.get(deployment=deployment, auto_scheduled=False)
    assert response.status_code == 302 and response["Location"] == f"/ui/flow-runs/{run.id}/"
    # `dry` unticked is False; `note` left empty is left out (its default applies); `extra` typed null is None.
    assert run.parameters == {
        "day": "mon",
        "limit": 3,
        "ratio": 0.5,
        "mode": "fast",
        "dry": False,
        "items": [1, 2],
        "options": {"dry": False},
        "extra": None,
    }
    assert run.tags == ["etl", "adhoc", "urgent"]
    assert run.state_type == "SCHEDULED" and run.expected_start_time == start
    assert run.work_pool_name == "local"


def test_pause_and_resume_go_through_the_services(admin_client):
    """Pausing removes the waiting scheduled runs (deployment_pause); resuming schedules again."""
    deployment = make_deployment()
    assert FlowRun.objects.filter(deployment=deployment, auto_scheduled=True).exists()
    assert admin_client.get(f"/ui/deployments/{deployment.id}/pause/").status_code == 405

    response = admin_client.post(f"/ui/deployments/{deployment.id}/pause/", follow=True)

    deployment.refresh_from_db()
    assert deployment.paused
    assert not FlowRun.objects.filter(deployment=deployment, auto_scheduled=True).exists()
    page = text_of(response)
    assert "Paused nightly" in page and 'data-testid="resume-deployment"' in page

    # The buttons are forms with the CSRF token; a POST without it (another site's form) is refused.
    assert 'name="csrfmiddlewaretoken"' in page
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(User.objects.get(username="staff"))
    assert guarded.post(f"/ui/deployments/{deployment.id}/resume/").status_code == 403
    deployment.refresh_from_db()
    assert deployment.paused

    response = admin_client.post(f"/ui/deployments/{deployment.id}/resume/")

    assert response.status_code == 302 and response["Location"] == f"/ui/deployments/{deployment.id}/"
    deployment.refresh_from_db()
    assert not deployment.paused
    assert FlowRun.objects.filter(deployment=deployment, auto_scheduled=True, state_type="SCHEDULED").exists()


def test_the_work_pools_page_shows_queues_workers_and_the_worker_command(admin_client, django_assert_max_num_queries):
    pool = work_pool_create(name="local", concurrency_limit=4)
    work_queue_create(pool=pool, name="critical", priority=1, concurrency_limit=2)
    worker_heartbeat(pool=pool, name="host-1")
    worker_heartbeat(pool=pool, name="host-2", now=timezone.now() - timedelta(minutes=10))
    work_pool_create(name="gpu pool", type="celery")

    with django_assert_max_num_queries(8):
        response = admin_client.get("/ui/work-pools/")

    page = text_of(response)
    assert response.status_code == 200
    local = re.search(r'data-name="local".*?</section>', page, re.S).group(0)
    assert "orchestrator worker start --pool local" in local
    assert re.search(r"<td>critical</td><td>1</td><td>2</td>", local)
    assert re.search(r"<td>default</td><td>\d+</td><td>none</td>", local)
    assert re.search(r"host-1</td><td[^>]*>\d+ s ago</td>\s*<td><span class=\"worker worker-online\">online", local)
    assert re.search(r"host-2</td><td[^>]*>10 min ago</td>\s*<td><span class=\"worker worker-offline\">offline", local)
    assert "orchestrator worker start --pool &#x27;gpu pool&#x27;" in page


def test_the_concurrency_page_shows_slots_in_use_and_the_runs_holding_them(admin_client):
    concurrency_limit_create(tag="db", limit=2)
    concurrency_limit_create(tag="idle", limit=1)
    flow_run = run_in(Running())
    task_run, _ = run_services.task_run_create(flow_run=flow_run, task_key="load", name="load-1", tags=["db"])
    result = engine.propose_state(kind=engine.TASK_RUN, run_id=task_run.id, state=Running())
    assert result.accepted and slots_of("db") == [str(task_run.id)]

    response = admin_client.get("/ui/concurrency/")

    page = text_of(response)
    db_row = re.search(r'data-tag="db".*?</tr>', page, re.S).group(0)
    assert "1 / 2" in db_row and f'href="/ui/flow-runs/{flow_run.id}/"' in db_row and "load-1" in db_row
    idle_row = re.search(r'data-tag="idle".*?</tr>', page, re.S).group(0)
    assert "0 / 1" in idle_row and "free" in idle_row


def test_the_admin_and_the_live_pages_link_to_each_other(admin_client):
    """ "View site" leads to /ui/, change pages of deployments, pools and runs have "View live", / opens /ui/."""
    deployment = make_deployment()
    pool = WorkPool.objects.get(name="local")
    run = run_in(Completed())

    assert f'href="/ui/deployments/{deployment.id}/" class="viewsitelink">View live' in text_of(
        admin_client.get(f"/admin/deployments/deployment/{deployment.id}/change/")
    )
    assert f'href="/ui/work-pools/#pool-{pool.id}" class="viewsitelink">View live' in text_of(
        admin_client.get(f"/admin/work_pools/workpool/{pool.id}/change/")
    )
    assert f'href="/ui/flow-runs/{run.id}/" class="viewsitelink">View live' in text_of(
        admin_client.get(f"/admin/runs/flowrun/{run.id}/change/")
    )
    assert '<a href="/ui/">View site</a>' in text_of(admin_client.get("/admin/"))
    assert 'href="/admin/">Configuration</a>' in text_of(admin_client.get("/ui/"))
    response = admin_client.get("/")
    assert response.status_code == 302 and response["Location"] == "/ui/"


def test_a_deployment_without_a_schema_takes_its_parameters_as_one_json_object(admin_client):
    """Deployments made through the API may carry no schema: their defaults are edited as JSON."""
    deployment = make_deployment(name="loose", parameter_openapi_schema=None, parameters={"limit": 5, "day": "x"})
    page = text_of(admin_client.get(f"/ui/deployments/{deployment.id}/"))
    textarea = re.search(r'<textarea name="parameters-json"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    assert "&quot;limit&quot;: 5" in textarea and "&quot;day&quot;: &quot;x&quot;" in textarea

    refused = admin_client.post(f"/ui/deployments/{deployment.id}/run/", {"parameters-json": "[1, 2]"})
    assert refused.status_code == 400 and "must be a JSON object" in text_of(refused)

    response = admin_client.post(f"/ui/deployments/{deployment.id}/run/", {"parameters-json": '{"day": "mon"}'})
    run = FlowRun.objects.get(deployment=deployment, auto_scheduled=False)
    assert response["Location"] == f"/ui/flow-runs/{run.id}/"
    assert run.parameters == {"limit": 5, "day": "mon"}

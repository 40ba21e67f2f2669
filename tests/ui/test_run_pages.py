"""The flow run pages through Django's test client with a logged-in Operator: the list with its filters and
keyset pages, a run's page with its parts, the Cancel, Retry and Resume buttons acting through the engine, and
who may see them. Rows are made through the services and moved through the engine, as clients do."""

from __future__ import annotations

import datetime
import re
import uuid

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.roles import OPERATOR
from apps.deployments.services import deployment_upsert
from apps.flows.services import flow_get_or_create
from apps.logs.services import logs_create
from apps.orchestration import engine
from apps.runs import services as run_services
from apps.runs.models import FlowRun
from apps.ui.views import runs as run_views
from orchestrator.states import Completed, Paused, Running, Scheduled
from tests.support.users import user_with_role

INPUT_SCHEMA = {
    "type": "object",
    "properties": {
        "approver": {"type": "string", "title": "Approver"},
        "copies": {"type": "integer", "minimum": 1},
        "mode": {"enum": ["fast", "safe"]},
    },
    "required": ["approver", "copies"],
}


@pytest.fixture(scope="module")
def browser() -> Client:
    """One client for the module: a new one reloads the middleware (and WhiteNoise rescans the static files)."""
    return Client()


@pytest.fixture
def staff(db, browser) -> Client:
    """An Operator: sees the pages and may use the buttons."""
    user = user_with_role("ops", OPERATOR)
    browser.force_login(user)
    yield browser
    browser.logout()


def move(run: FlowRun, *states) -> FlowRun:
    for state in states:
        result = engine.propose_state(kind=engine.FLOW_RUN, run_id=run.id, state=state)
        assert result.accepted, result.reason
    run.refresh_from_db()
    return run


@pytest.fixture
def world(db):
    """Two flows, a deployment, runs in several states, pools and tags; one run with task runs, a subflow, logs."""
    etl = flow_get_or_create(name="etl")[0]
    report = flow_get_or_create(name="report")[0]
    deployment = deployment_upsert(
        flow=etl,
        name="nightly",
        values={
            "entrypoint": "flows/etl.py:etl",
            "work_pool_name": "local",
            "parameter_openapi_schema": {"type": "object", "properties": {"day": {"type": "string"}}},
        },
        schedules=[],
    )[0]
    main = run_services.flow_run_create(
        flow=etl,
        name="main-run",
        parameters={"day": "monday"},
        tags=["etl", "nightly"],
        deployment_id=deployment.id,
        work_pool_name="local",
    )[0]
    move(main, Running())
    extract = run_services.task_run_create(flow_run=main, task_key="etl.extract", name="extract")[0]
    transform = run_services.task_run_create(
        flow_run=main,
        task_key="etl.transform",
        name="transform",
        task_inputs={"rows": [{"input_type": "task_run", "id": str(extract.id)}]},
    )[0]
    load = run_services.task_run_create(
        flow_run=main,
        task_key="etl.load",
        name="load",
        task_inputs={"rows": [{"input_type": "task_run", "id": str(transform.id)}]},
    )[0]
    engine.propose_state(kind=engine.TASK_RUN, run_id=extract.id, state=Running())
    engine.propose_state(kind=engine.TASK_RUN, run_id=extract.id, state=Completed())
    child = run_services.flow_run_create(flow=report, name="child-report", parent_task_run=load)[0]
    now = timezone.now()
    logs_create(
        entries=[
            {"flow_run_id": main.id, "level": 20, "message": "starting", "timestamp": now},
            {"flow_run_id": main.id, "task_run_id": extract.id, "level": 40, "message": "boom", "timestamp": now},
        ]
    )
    done = run_services.flow_run_create(
        flow=report, name="done-run", tags=["weekly"], work_pool_name="other", parameters={"x": 1}
    )[0]
    move(done, Running(), Completed(data={"storage": "local", "path": "/tmp/r", "serializer": "json"}))
    waiting = run_services.flow_run_create(
        flow=etl, name="waiting-run", state=Scheduled(), deployment_id=deployment.id
    )[0]
    return {
        "deployment": deployment,
        "etl": etl,
        "report": report,
        "main": main,
        "child": child,
        "done": done,
        "waiting": waiting,
        "task_runs": [extract, transform, load],
    }


def row_ids(html: str) -> list[str]:
    return re.findall(r'data-testid="flow-run-row" data-id="([0-9a-f-]+)"', html)


def ids(*runs) -> set[str]:
    return {str(run.id) for run in runs}


def test_runs_list_shows_rows_and_every_filter_narrows_it(staff, world):
    """Each filter of the query string is applied, the rows carry their hooks, and the page's queries do not
    depend on how many runs it shows."""
    main, done, waiting, child = world["main"], world["done"], world["waiting"], world["child"]
    response = staff.get("/ui/flow-runs/")
    html = response.content.decode()
    assert response.status_code == 200
    assert set(row_ids(html)) == ids(main, done, waiting, child)
    assert row_ids(html)[0] == str(waiting.id)  # newest first
    assert f'href="/ui/flow-runs/{main.id}/"' in html and "nightly" in html and 'class="state state-RUNNING"' in html
    cases = {
        "state=RUNNING": ids(main),
        "state=RUNNING&state=COMPLETED": ids(main, done),
        "state=Scheduled": ids(waiting),
        "state=COMPLETED&state=Scheduled": ids(done, waiting),
        f"flow={world['report'].id}": ids(done, child),
        f"deployment={world['deployment'].id}": ids(main, waiting),
        "work_pool=other": ids(done),
        "tag=etl": ids(main),
        "tag=etl,weekly": set(),
        "name=DONE": ids(done),
        "recent=1h": ids(main, done, waiting, child),
        "since=2000-01-01T00:00&until=2001-01-01": set(),
        f"since={(timezone.now() + datetime.timedelta(hours=1)).isoformat()}".replace("+", "%2B"): set(),
    }
    for query, expected in cases.items():
        response = staff.get(f"/ui/flow-runs/?{query}")
        assert response.status_code == 200, query
        assert set(row_ids(response.content.decode())) == expected, query

    def queries_for(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert staff.get(url).status_code == 200
        return len(captured)

    few = queries_for("/ui/flow-runs/?state=COMPLETED")
    for number in range(5):
        run_services.flow_run_create(flow=world["report"], name=f"more-{number}", work_pool_name="other")
    assert queries_for("/ui/flow-runs/") == few  # no query per row
    sql = " ".join(q["sql"] for q in captured_sql(staff, "/ui/flow-runs/?state=RUNNING")).upper()
    assert "COUNT(" not in sql and "OFFSET" not in sql


def captured_sql(client: Client, url: str) -> list[dict]:
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    return captured.captured_queries


def test_runs_list_pages_by_cursor_without_repeating_a_row(staff, world, monkeypatch):
    """Newer/Older links walk the list by keyset: every run once, even when runs are created meanwhile."""
    monkeypatch.setattr(run_views, "RUNS_PER_PAGE", 3)
    for number in range(5):  # with main-run and waiting-run: 7 runs of etl, pages of 3, 3, 1
        run_services.flow_run_create(flow=world["etl"], name=f"extra-{number}")
    total = FlowRun.objects.count()
    seen: list[str] = []
    url = "/ui/flow-runs/?flow=" + str(world["etl"].id)
    expected = FlowRun.objects.filter(flow=world["etl"]).count()
    pages = 0
    while url:
        html = staff.get(url).content.decode()
        seen.extend(row_ids(html))
        pages += 1
        if pages == 1:
            run_services.flow_run_create(flow=world["etl"], name="arrived-meanwhile")
            assert "Newer" not in html
        found = re.search(r'href="(\?[^"]*cursor=[^"]+)" rel="next"', html)
        url = "/ui/flow-runs/" + found.group(1).replace("&amp;", "&") if found else None
    assert len(seen) == len(set(seen)) == expected and pages == 3
    assert total < FlowRun.objects.count()
    newer = re.search(r'href="(\?[^"]*cursor=[^"]+)" rel="prev"', html)
    back = staff.get("/ui/flow-runs/" + newer.group(1).replace("&amp;", "&")).content.decode()
    assert row_ids(back) == seen[3:6]
    # Several states are read one index range each and merged: the pages still follow one order.
    monkeypatch.setattr(run_views, "RUNS_PER_PAGE", 1)
    first = staff.get("/ui/flow-runs/?state=RUNNING&state=COMPLETED").content.decode()
    older = re.search(r'href="(\?[^"]*cursor=[^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = staff.get("/ui/flow-runs/" + older).content.decode()
    assert row_ids(first) + row_ids(second) == [str(world["done"].id), str(world["main"].id)]
    assert 'rel="next"' not in second


def test_bad_filter_values_say_what_is_wrong(staff, world):
    """A hand-edited URL gets a 400 page naming the filter, never a 500."""
    for query, words in {
        "state=BOGUS": "“state”",
        "flow=not-a-uuid": "“flow”",
        "since=yesterday-ish": "“since”",
        "since=2026-01-02&until=2026-01-01": "until",
        "recent=1y": "“recent”",
        "cursor=%%%garbage": "page link is not valid",
    }.items():
        response = staff.get(f"/ui/flow-runs/?{query}")
        assert response.status_code == 400, query
        assert words in response.content.decode(), query
    assert staff.get("/ui/flow-runs/rows/?flow=nope").status_code == 400
    assert staff.get(f"/ui/flow-runs/{world['main'].id}/?task_cursor=zz&log_cursor=zz").status_code == 200
    assert staff.get(f"/ui/flow-runs/{world['main'].id}/part/logs/?after=zz").status_code == 400
    assert staff.get(f"/ui/flow-runs/{world['main'].id}/part/nothing/").status_code == 404
    assert staff.get(f"/ui/flow-runs/{uuid.uuid4()}/").status_code == 404


def test_live_rows_endpoint_renders_only_matching_new_runs(staff, world):
    """The list's script asks for the rows of announced runs with the page's filters: the server decides."""
    main, done = world["main"], world["done"]
    html = staff.get(f"/ui/flow-runs/rows/?state=RUNNING&ids={main.id},{done.id},junk").content.decode()
    assert row_ids(html) == [str(main.id)]
    assert len(row_ids(staff.get("/ui/flow-runs/rows/?tag=weekly").content.decode())) == 1


def test_run_page_shows_state_timeline_tasks_graph_logs_and_links(staff, world):
    """Everything the page promises is there with its hook, in a fixed number of queries."""
    main = world["main"]
    response = staff.get(f"/ui/flow-runs/{main.id}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert re.search(r'data-testid="run-state"[^>]*>Running</span>', html)
    assert html.count("<li data-id=") == 2  # Pending, Running in the timeline
    assert "&quot;day&quot;: &quot;monday&quot;" in html
    assert 'data-testid="task-runs"' in html and all(f'<tr data-id="{t.id}" ' in html for t in world["task_runs"])
    graph = html.split('data-testid="run-graph"')[1].split("</svg>")[0]
    assert graph.count('class="edge"') == 2 and graph.count('class="node') == 3
    assert f'href="/ui/flow-runs/{world["child"].id}/"' in graph  # the subflow, linked from its task run's box
    assert 'data-testid="run-logs"' in html and "starting" in html and "boom" in html and "extract" in html
    assert 'value="Cancel"' in html and 'value="Retry"' not in html and 'value="Resume"' not in html
    errors_only = staff.get(f"/ui/flow-runs/{main.id}/?log_level=40").content.decode()
    assert "boom" in errors_only and "starting" not in errors_only
    child = staff.get(f"/ui/flow-runs/{world['child'].id}/").content.decode()
    assert f'href="/ui/flow-runs/{main.id}/" data-testid="parent-run"' in child
    done = staff.get(f"/ui/flow-runs/{world['done'].id}/").content.decode()
    assert 'data-testid="run-result"' in done and "&quot;serializer&quot;: &quot;json&quot;" in done

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            staff.get(f"/ui/flow-runs/{main.id}/")
        return len(captured)

    before = queries()
    for number in range(5):
        run_services.task_run_create(flow_run=main, task_key=f"etl.more{number}")
    logs_create(entries=[{"flow_run_id": main.id, "message": f"line {n}"} for n in range(5)])
    assert queries() == before


def test_graph_lays_out_by_dependency_depth_and_caps_huge_runs(staff, world):
    """Each task run sits one column right of its deepest upstream; a run past the cap draws its first task
    runs and says so."""
    from apps.ui import graph as run_graph

    graph = run_graph.flow_run_graph(run_id=world["main"].id)
    assert [node.depth for node in graph.nodes] == [0, 1, 2] and not graph.truncated
    assert graph.nodes[2].href == f"/ui/flow-runs/{world['child'].id}/" and graph.nodes[2].name == "child-report"
    capped = run_graph.flow_run_graph(run_id=world["main"].id, max_nodes=2)
    assert capped.truncated and len(capped.nodes) == 2 and capped.edges == [(capped.nodes[0].id, capped.nodes[1].id)]
    svg = str(run_graph.render_svg(capped))
    assert svg.count('class="edge"') == 1 and "<script" not in svg


def test_run_page_parts_reload_what_a_socket_missed(staff, world):
    """After a reconnect the script reloads the summary, the task runs, the graph and the log lines after its
    last one; those fragments come from the page's own templates."""
    main = world["main"]
    summary = staff.get(f"/ui/flow-runs/{main.id}/part/summary/").content.decode()
    assert 'data-testid="run-state"' in summary and "Running" in summary
    assert 'data-testid="task-runs"' in staff.get(f"/ui/flow-runs/{main.id}/part/task-runs/").content.decode()
    assert 'class="edge"' in staff.get(f"/ui/flow-runs/{main.id}/part/graph/").content.decode()
    page = staff.get(f"/ui/flow-runs/{main.id}/").content.decode()
    last = re.findall(r'data-cursor="([^"]+)"', page)[-1]
    logs_create(entries=[{"flow_run_id": main.id, "message": "missed while away", "timestamp": timezone.now()}])
    missed = staff.get(f"/ui/flow-runs/{main.id}/part/logs/?after={last}").content.decode()
    assert "missed while away" in missed and "boom" not in missed


def test_cancel_goes_through_the_engine(staff, world):
    """A running run becomes Cancelling (its worker stops it), one not started is Cancelled at once, and a final
    run says why it cannot be cancelled."""
    response = staff.post(f"/ui/flow-runs/{world['main'].id}/cancel/", follow=True)
    assert "is cancelling" in response.content.decode()
    world["main"].refresh_from_db()
    assert world["main"].state_type == "CANCELLING" and world["main"].state_message.startswith("Cancelled from the UI")
    staff.post(f"/ui/flow-runs/{world['waiting'].id}/cancel/")
    world["waiting"].refresh_from_db()
    assert world["waiting"].state_name == "Cancelled"
    response = staff.post(f"/ui/flow-runs/{world['done'].id}/cancel/", follow=True)
    assert "cannot be cancelled: the run is already Completed" in response.content.decode()


def test_retry_creates_a_run_of_the_same_deployment_with_the_same_parameters(staff, world):
    """Retry is the deployment's create_flow_run service: a new Scheduled run; runs of no deployment refuse."""
    main = move(world["main"], Completed())
    assert 'value="Retry"' in staff.get(f"/ui/flow-runs/{main.id}/").content.decode()
    response = staff.post(f"/ui/flow-runs/{main.id}/retry/")
    new_run = FlowRun.objects.exclude(pk__in=[r.pk for r in world.values() if isinstance(r, FlowRun)]).get()
    assert response.status_code == 302 and response["Location"] == f"/ui/flow-runs/{new_run.id}/"
    assert new_run.deployment_id == world["deployment"].id and new_run.parameters == {"day": "monday"}
    assert new_run.state_name == "Scheduled" and set(new_run.tags) == {"etl", "nightly"}
    response = staff.post(f"/ui/flow-runs/{world['done'].id}/retry/", follow=True)
    assert "not a run of a deployment" in response.content.decode()


def test_resume_with_typed_input_validates_it_on_the_server(staff, world):
    """A pause that asked for input gets a form from its schema; bad input shows field errors and leaves the
    run paused; good input resumes it through the service, with the input in the new state's details."""
    main = move(world["main"], Paused(state_details={"run_input_schema": INPUT_SCHEMA}))
    page = staff.get(f"/ui/flow-runs/{main.id}/").content.decode()
    assert 'data-testid="resume-form"' in page and 'name="approver"' in page and 'name="copies"' in page
    response = staff.post(f"/ui/flow-runs/{main.id}/resume/", {"approver": "", "copies": "many"})
    html = response.content.decode()
    assert response.status_code == 400 and "This field is required." in html and "Enter a whole number." in html
    response = staff.post(f"/ui/flow-runs/{main.id}/resume/", {"approver": "ann", "copies": "0"})
    assert response.status_code == 400 and "minimum of 1" in response.content.decode()
    main.refresh_from_db()
    assert main.state_name == "Paused"
    response = staff.post(f"/ui/flow-runs/{main.id}/resume/", {"approver": "ann", "copies": "2", "mode": '"safe"'})
    assert response.status_code == 302
    main.refresh_from_db()
    assert main.state_name == "Running"
    assert main.state_details["run_input"] == {"approver": "ann", "copies": 2, "mode": "safe"}
    other = run_services.flow_run_create(flow=world["etl"], name="plain-pause")[0]
    move(other, Running(), Paused())
    assert 'data-testid="resume-button"' in staff.get(f"/ui/flow-runs/{other.id}/").content.decode()
    staff.post(f"/ui/flow-runs/{other.id}/resume/")
    other.refresh_from_db()
    assert other.state_name == "Running"
    response = staff.post(f"/ui/flow-runs/{other.id}/resume/", follow=True)
    assert "cannot be resumed" in response.content.decode()


def test_only_users_with_a_role_see_the_pages_and_buttons_need_csrf(db, world, browser):
    """Anonymous users go to the login page; a POST without the CSRF token is refused (tests/ui/test_roles.py
    has every role)."""
    run = world["main"]
    for url in ("/ui/flow-runs/", f"/ui/flow-runs/{run.id}/", f"/ui/flow-runs/{run.id}/part/summary/"):
        response = browser.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/ui/login/?next="), url
    response = browser.post(f"/ui/flow-runs/{run.id}/cancel/")
    assert response.status_code == 302 and response["Location"].startswith("/ui/login/")
    browser.force_login(user_with_role("nobody", None))
    assert browser.get("/ui/flow-runs/").status_code == 403
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user_with_role("ops2", OPERATOR))
    assert strict.post(f"/ui/flow-runs/{run.id}/cancel/").status_code == 403
    run.refresh_from_db()
    assert run.state_name == "Running"
    browser.logout()


@pytest.mark.skipif(connection.vendor != "sqlite", reason="PostgreSQL searches names through a trigram index")
def test_a_name_search_on_sqlite_reads_the_newest_runs_only_unless_given_a_time_range(staff, monkeypatch) -> None:
    """A rare name on SQLite would read every run: without a time range the search is bounded, and says so."""
    flow = flow_get_or_create(name="etl")[0]
    runs = [run_services.flow_run_create(flow=flow, name=f"alpha-{number}")[0] for number in range(3)]
    base = timezone.now() - datetime.timedelta(hours=1)
    for minutes, run in enumerate(runs):  # alpha-0 oldest
        FlowRun.objects.filter(id=run.id).update(created=base + datetime.timedelta(minutes=minutes))
    monkeypatch.setattr(run_views, "NAME_SEARCH_WINDOW", 2)

    bounded = staff.get("/ui/flow-runs/", {"name": "ALPHA"})
    assert bounded.status_code == 200
    assert row_ids(bounded.content.decode()) == [str(runs[2].id), str(runs[1].id)]
    assert "looked through the newest 2 runs" in bounded.content.decode()

    since = (base - datetime.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    everything = staff.get("/ui/flow-runs/", {"name": "alpha", "since": since})
    assert row_ids(everything.content.decode()) == [str(run.id) for run in reversed(runs)]
    assert "looked through the newest" not in everything.content.decode()

"""Who may see and do what on the live pages and in the admin (apps/ui/access.py, apps/accounts/admin_site.py):
anonymous visitors go to the login page, a user with no role gets a 403 page that says whom to ask, a Viewer sees
every page but no button and changes nothing, an Operator acts, an Admin configures in the admin. Logging in
through /ui/login/ works for every role, staff or not."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from apps.accounts.admin_site import NO_ROLE
from apps.accounts.roles import ADMIN, OPERATOR, VIEWER
from apps.deployments.models import Deployment
from apps.deployments.services import deployment_upsert
from apps.flows.services import flow_get_or_create
from apps.orchestration import engine
from apps.runs import services as run_services
from apps.runs.models import FlowRun
from apps.ui import urls as ui_urls
from orchestrator.states import Completed, Paused, Running
from tests.support.server import sqlite_pass_only
from tests.support.users import user_with_role

# Authorization and hardening are the same code on both databases: the SQLite pass runs these.
pytestmark = [pytest.mark.django_db, sqlite_pass_only]

# The live pages' URL names: what anyone with a role may open, what needs Operator, and the way in and out.
PAGES = {
    "dashboard",
    "flow-run-list",
    "flow-run-rows",
    "flow-run-detail",
    "flow-run-part",
    "flows",
    "deployments",
    "deployment",
    "work-pools",
    "concurrency",
}
ACTIONS = {
    "deployment-run",
    "deployment-pause",
    "deployment-resume",
    "flow-run-cancel",
    "flow-run-retry",
    "flow-run-resume",
}
OPEN = {"login", "logout"}
BUTTONS = ["run-form", "pause-deployment", "resume-deployment", "cancel-button", "retry-button", "resume-button"]
PASSWORD = "a-long-password-for-tests"


def move(run: FlowRun, *states) -> FlowRun:
    for state in states:
        assert engine.propose_state(kind=engine.FLOW_RUN, run_id=run.id, state=state).accepted
    run.refresh_from_db()
    return run


@pytest.fixture
def world() -> dict:
    """A deployment with a running run, a finished run (Retry) and a paused run (Resume)."""
    flow = flow_get_or_create(name="etl")[0]
    schema = {"type": "object", "properties": {"day": {"type": "string", "position": 0}}}
    deployment = deployment_upsert(
        flow=flow,
        name="nightly",
        values={"entrypoint": "flows/etl.py:etl", "work_pool_name": "local", "parameter_openapi_schema": schema},
        schedules=[],
    )[0]

    def run(name: str, *states) -> FlowRun:
        created = run_services.flow_run_create(flow=flow, name=name, deployment_id=deployment.id)[0]
        return move(created, *states)

    return {
        "deployment": deployment,
        "running": run("running-run", Running()),
        "finished": run("finished-run", Running(), Completed()),
        "paused": run("paused-run", Running(), Paused()),
    }


def url_of(name: str, world: dict) -> str:
    """The URL of a live page or action, on the run the action applies to."""
    pattern = next(pattern for pattern in ui_urls.urlpatterns if pattern.name == name)
    run = {"flow-run-retry": world["finished"], "flow-run-resume": world["paused"]}.get(name, world["running"])
    values = {"run_id": run.id, "deployment_id": world["deployment"].id, "part": "summary"}
    return reverse(f"ui:{name}", kwargs={key: values[key] for key in pattern.pattern.converters})


def test_every_live_url_is_a_page_an_action_or_the_way_in():
    """A new page must say who may see it: this test lists them all, and the others check each list."""
    assert {pattern.name for pattern in ui_urls.urlpatterns} == PAGES | ACTIONS | OPEN


def what_changes(world: dict) -> tuple:
    """Everything an action could change: the runs and their states, and whether the deployment is paused."""
    runs = sorted(FlowRun.objects.values_list("id", "state_type"))
    return runs, Deployment.objects.get(pk=world["deployment"].id).paused


def post_every_action(client: Client, world: dict) -> dict[str, int]:
    body = {"parameters-day": "monday"}
    return {name: client.post(url_of(name, world), body).status_code for name in sorted(ACTIONS)}


def test_anonymous_visitors_are_sent_to_the_login_page_from_every_page_and_action(client, world):
    before = what_changes(world)
    for name in sorted(PAGES | ACTIONS):
        url = url_of(name, world)
        response = client.post(url) if name in ACTIONS else client.get(url)
        assert response.status_code == 302, name
        assert response["Location"] == f"/ui/login/?next={url}", name
    assert what_changes(world) == before


def test_a_user_without_a_role_gets_a_403_page_that_says_whom_to_ask(client, world):
    """Logged in (by a password that still works, say), but in no group: nothing to see, and told why."""
    client.force_login(user_with_role("nobody", None))
    before = what_changes(world)
    for name in sorted(PAGES):
        response = client.get(url_of(name, world))
        assert response.status_code == 403, name
    page = response.content.decode()
    assert "has no role on these pages" in page
    assert "Ask an admin to add you to the Viewer, Operator or Admin group" in page
    assert "Log in as someone else" in page
    assert set(post_every_action(client, world).values()) == {403}
    assert what_changes(world) == before


@pytest.mark.parametrize("staff_without_group", [False, True], ids=["viewer-group", "staff-in-no-group"])
def test_a_viewer_sees_every_page_but_no_button_and_changes_nothing(client, world, staff_without_group):
    """Viewers watch: each page renders without its forms, and a POST of each action is 403 and writes nothing."""
    if staff_without_group:
        client.force_login(user_with_role("watcher", None, is_staff=True))
    else:
        client.force_login(user_with_role("watcher", VIEWER))
    for name in sorted(PAGES):
        assert client.get(url_of(name, world)).status_code == 200, name
    pages = [
        client.get(f"/ui/deployments/{world['deployment'].id}/"),
        *(client.get(f"/ui/flow-runs/{world[run].id}/") for run in ("running", "finished", "paused")),
        *(client.get(f"/ui/flow-runs/{world[run].id}/part/summary/") for run in ("running", "finished", "paused")),
    ]
    for response in pages:
        html = response.content.decode()
        assert not [button for button in BUTTONS if f'data-testid="{button}"' in html]
        assert 'method="post"' not in html.replace('id="logout-form" method="post"', "")

    before = what_changes(world)
    statuses = post_every_action(client, world)
    assert set(statuses.values()) == {403}, statuses
    assert what_changes(world) == before
    page = client.post(url_of("flow-run-cancel", world)).content.decode()
    assert "This needs the Operator role or above" in page and "is a Viewer" in page
    assert "Operator or Admin group" in page


@pytest.mark.parametrize("role", [OPERATOR, ADMIN])
def test_an_operator_sees_the_buttons_and_each_action_works(client, world, role):
    client.force_login(user_with_role("operator", role))
    deployment, running, finished, paused = (world[key] for key in ("deployment", "running", "finished", "paused"))
    html = client.get(f"/ui/deployments/{deployment.id}/").content.decode()
    assert 'data-testid="run-form"' in html and 'data-testid="pause-deployment"' in html
    assert 'data-testid="cancel-button"' in client.get(f"/ui/flow-runs/{running.id}/").content.decode()
    assert 'data-testid="retry-button"' in client.get(f"/ui/flow-runs/{finished.id}/").content.decode()
    assert 'data-testid="resume-button"' in client.get(f"/ui/flow-runs/{paused.id}/part/summary/").content.decode()

    runs = FlowRun.objects.count()
    assert client.post(url_of("deployment-run", world), {"parameters-day": "monday"}).status_code == 302
    assert FlowRun.objects.filter(deployment=deployment, parameters={"day": "monday"}).count() == 1
    assert client.post(url_of("deployment-pause", world)).status_code == 302
    assert Deployment.objects.get(pk=deployment.id).paused
    assert client.post(url_of("deployment-resume", world)).status_code == 302
    assert not Deployment.objects.get(pk=deployment.id).paused
    assert client.post(url_of("flow-run-cancel", world)).status_code == 302
    running.refresh_from_db()
    assert running.state_type in ("CANCELLING", "CANCELLED")
    assert client.post(url_of("flow-run-retry", world)).status_code == 302
    assert FlowRun.objects.count() == runs + 2
    assert client.post(url_of("flow-run-resume", world)).status_code == 302
    paused.refresh_from_db()
    assert paused.state_type != "PAUSED"


def test_in_the_admin_viewers_and_operators_look_and_admins_change(client, world):
    """The admin admits every role; its model permissions (roles_sync) decide: view for Viewer and Operator,
    everything for Admin. Nobody in the three groups needs is_staff."""
    change_page = f"/admin/deployments/deployment/{world['deployment'].id}/change/"
    for username, role in (("viewer", VIEWER), ("operator", OPERATOR)):
        client.force_login(user_with_role(username, role))
        assert client.get("/admin/").status_code == 200, role
        page = client.get(change_page)
        assert page.status_code == 200 and 'name="_save"' not in page.content.decode(), role
        assert client.get("/admin/auth/user/add/").status_code == 403, role
        assert client.post("/admin/auth/group/add/", {"name": "Auditors"}).status_code == 403, role
        assert not Group.objects.filter(name="Auditors").exists()

    client.force_login(user_with_role("admin", ADMIN))
    assert 'name="_save"' in client.get(change_page).content.decode()
    assert client.get("/admin/auth/user/add/").status_code == 200
    assert client.post("/admin/auth/group/add/", {"name": "Auditors"}).status_code == 302
    assert Group.objects.filter(name="Auditors").exists()

    client.force_login(user_with_role("nobody", None))
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def log_in(client: Client, url: str, username: str, password: str, next_url: str):
    form = client.get(f"{url}?next={next_url}")
    assert form.status_code == 200
    data = {"username": username, "password": password, "next": next_url}
    return client.post(f"{url}?next={next_url}", {**data, "csrfmiddlewaretoken": csrf_token(form.content.decode())})


def test_a_viewer_who_is_not_staff_logs_in_through_the_login_page_and_out_again(world):
    """The admin's look, Django's login with its CSRF check, `next` honoured (on this site only)."""
    user_with_role("vera", VIEWER, password=PASSWORD)
    browser = Client(enforce_csrf_checks=True)
    form = browser.get("/ui/login/?next=/ui/flows/").content.decode()
    assert 'id="login-form"' in form and "Orchestrator" in form
    refused = browser.post("/ui/login/", {"username": "vera", "password": PASSWORD})
    assert refused.status_code == 403  # no CSRF token
    wrong = log_in(browser, "/ui/login/", "vera", "not-the-password", "/ui/flows/")
    assert wrong.status_code == 200 and "Please enter a correct username and password" in wrong.content.decode()

    response = log_in(browser, "/ui/login/", "vera", PASSWORD, "/ui/flows/")
    assert response.status_code == 302 and response["Location"] == "/ui/flows/"
    assert browser.get("/ui/flows/").status_code == 200
    assert browser.get("/ui/login/?next=/ui/deployments/")["Location"] == "/ui/deployments/"  # in already

    page = browser.get("/ui/").content.decode()
    response = browser.post("/ui/logout/", {"csrfmiddlewaretoken": csrf_token(page)})
    assert response.status_code == 302 and response["Location"] == "/ui/login/"
    assert browser.get("/ui/")["Location"] == "/ui/login/?next=/ui/"

    elsewhere = log_in(browser, "/ui/login/", "vera", PASSWORD, "https://evil.example/")
    assert elsewhere["Location"] == "/ui/"


def test_the_admins_login_admits_every_role_and_says_why_it_refuses_a_user_with_none(world):
    user_with_role("vera", VIEWER, password=PASSWORD)
    user_with_role("nobody", None, password=PASSWORD)
    browser = Client(enforce_csrf_checks=True)
    response = log_in(browser, "/admin/login/", "vera", PASSWORD, "/admin/")
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert browser.get("/admin/").status_code == 200

    refused = log_in(Client(enforce_csrf_checks=True), "/admin/login/", "nobody", PASSWORD, "/admin/")
    assert refused.status_code == 200 and NO_ROLE.replace("'", "&#x27;") in refused.content.decode()
    # Through the pages' login the same user gets in, and the pages say what is missing.
    pages = Client()
    response = log_in(pages, "/ui/login/", "nobody", PASSWORD, "/ui/")
    assert response["Location"] == "/ui/"
    assert pages.get("/ui/").status_code == 403
    again = pages.get("/ui/login/").content.decode()
    assert "You are authenticated as nobody, but are not authorized" in again

"""The websocket consumers through Channels' communicator, on the real database and the in-memory channel layer,
fed by the real publisher (the `live_publish` event consumer): handshakes refused without a staff session, an
unknown run closed with 4404, and flow_run / task_run / log messages in the REST API's shape, in commit order,
once each."""

from __future__ import annotations

import json
import uuid

import pytest
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.events.consumers import Consumer, consumer_get
from apps.events.models import ConsumerCursor
from apps.events.runner import EventRunner, consumer_run_batch
from apps.events.stream import stream_tail
from apps.live import publish
from apps.live.routing import websocket_application
from tests.events.support import wait_readable
from tests.live.support import LoopThread, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def loop():
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def publisher() -> EventRunner:
    """The server's publisher as each server process runs it (per process, from the stream's tail)."""
    runner = EventRunner([consumer_get("live_publish")])
    wait_readable()
    runner.run_once()  # takes its position at the tail
    return runner


def publish_all(publisher: EventRunner) -> list[str]:
    """Hand every committed event to the publisher in one batch; the SQL it ran."""
    wait_readable()  # on PostgreSQL another test's open transaction may hold events back
    with CaptureQueriesContext(connection) as queries:
        publisher.run_once()
    return [query["sql"] for query in queries]


def connect(loop: LoopThread, path: str, cookie: bytes | None) -> tuple[WebsocketCommunicator, bool, int | None]:
    headers = [(b"host", b"testserver"), (b"origin", b"http://testserver")]
    if cookie is not None:
        headers.append((b"cookie", cookie))

    async def open_socket():
        communicator = WebsocketCommunicator(websocket_application, path, headers=headers)
        connected, code = await communicator.connect()
        return communicator, connected, code

    return loop.run(open_socket())


def received(loop: LoopThread, communicator: WebsocketCommunicator) -> list[dict]:
    """Every message waiting on the socket (none arrives later: the publisher's sends have completed)."""

    async def drain():
        messages = []
        while not await communicator.receive_nothing(timeout=0.05):
            messages.append(json.loads(await communicator.receive_from()))
        return messages

    return loop.run(drain())


def close(loop: LoopThread, *communicators: WebsocketCommunicator) -> None:
    async def disconnect():
        for communicator in communicators:
            await communicator.disconnect()

    loop.run(disconnect())


def post(api: APIClient, path: str, body) -> dict:
    response = api.post(path, body, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def get(api: APIClient, path: str):
    response = api.get(path)
    assert response.status_code == 200, response.content
    return response.json()


def test_a_handshake_without_a_staff_session_is_refused(loop) -> None:
    """The stream shows every run: nobody but the admin's users may open it (Daphne answers such a close 403)."""
    for cookie in (None, b"sessionid=not-a-session", session_cookie(staff=False, username="visitor")):
        for path in ("/ws/flow-runs/", f"/ws/flow-runs/{uuid.uuid4()}/"):
            communicator, connected, code = connect(loop, path, cookie)
            assert not connected, (path, cookie)
            assert code == 1000
    # An unknown path is refused too, even for staff.
    _, connected, _ = connect(loop, "/ws/elsewhere/", session_cookie())
    assert not connected


def test_an_unknown_run_is_accepted_then_closed_with_4404_and_a_reason(loop) -> None:
    """A page must tell "no such run" from a network failure, which a refused handshake cannot say."""
    cookie = session_cookie()
    for run_id in (str(uuid.uuid4()), "not-a-uuid"):
        communicator, connected, _ = connect(loop, f"/ws/flow-runs/{run_id}/", cookie)
        assert connected
        closing = loop.run(communicator.receive_output(timeout=2))
        assert closing == {"type": "websocket.close", "code": 4404, "reason": f"no flow run with id {run_id}"}


def test_runs_task_runs_and_log_lines_arrive_in_the_rest_shape_in_order_once(loop, publisher, api) -> None:
    """What the live pages show is what the REST API says, in the order it was committed, never twice; one
    page's run gets nothing of another run's, and the publisher's reads do not grow with the batch."""
    cookie = session_cookie()
    flow = post(api, "/api/flows/", {"name": "live-etl"})
    runs_list, connected, _ = connect(loop, "/ws/flow-runs/", cookie)
    assert connected

    run = post(api, "/api/flow_runs/", {"flow": flow["id"], "tags": ["live"]})
    publish_all(publisher)
    assert received(loop, runs_list) == [{"type": "flow_run", "data": get(api, f"/api/flow_runs/{run['id']}/")}]

    run_page, connected, _ = connect(loop, f"/ws/flow-runs/{run['id']}/", cookie)
    assert connected
    other = post(api, "/api/flow_runs/", {"flow": flow["id"]})
    post(api, f"/api/flow_runs/{run['id']}/set_state/", {"state": {"type": "RUNNING"}})
    task = post(api, "/api/task_runs/", {"flow_run": run["id"], "task_key": "extract", "state": {"type": "RUNNING"}})
    post(api, "/api/logs/", [{"flow_run": run["id"], "task_run": task["id"], "message": f"row {n}"} for n in (1, 2)])
    post(api, "/api/logs/", [{"flow_run": other["id"], "message": "not on this page"}])
    post(api, f"/api/task_runs/{task['id']}/set_state/", {"state": {"type": "COMPLETED"}})
    post(api, "/api/logs/", [{"flow_run": run["id"], "message": "done"}])
    post(api, f"/api/flow_runs/{run['id']}/set_state/", {"state": {"type": "COMPLETED"}})
    publisher_queries = publish_all(publisher)

    logs = get(api, f"/api/logs/?flow_run={run['id']}")["results"]
    assert [line["message"] for line in logs] == ["row 1", "row 2", "done"]
    page = received(loop, run_page)
    # Each object once per batch, as it is now, at the place of its last change: the two first lines, the task
    # run (last changed after them), the last line, the flow run.
    assert page == [
        {"type": "log", "data": logs[0]},
        {"type": "log", "data": logs[1]},
        {"type": "task_run", "data": get(api, f"/api/task_runs/{task['id']}/")},
        {"type": "log", "data": logs[2]},
        {"type": "flow_run", "data": get(api, f"/api/flow_runs/{run['id']}/")},
    ]
    assert page[-1]["data"]["state_name"] == "Completed"
    listed = received(loop, runs_list)
    assert [(message["type"], message["data"]["id"]) for message in listed] == [
        ("flow_run", other["id"]),
        ("flow_run", run["id"]),
    ]
    assert listed[1] == page[-1]
    # The stream read, then one query per kind: flow runs, task runs, log lines.
    assert len(publisher_queries) == 4, publisher_queries

    publish_all(publisher)  # nothing new: nothing sent again
    assert received(loop, run_page) == [] and received(loop, runs_list) == []

    close(loop, run_page)
    post(api, "/api/logs/", [{"flow_run": run["id"], "message": "nobody watches"}])
    assert len(publish_all(publisher)) == 1  # the stream read only: no page is open on the run, its lines are not read
    close(loop, runs_list)


def test_the_durable_publisher_of_the_redis_mode_starts_at_the_tail(api) -> None:
    """With Redis one durable consumer publishes for every process; created on a stream with history, it must not
    push days of old changes to the pages."""
    flow = post(api, "/api/flows/", {"name": "before-the-publisher"})
    post(api, "/api/flow_runs/", {"flow": flow["id"]})
    wait_readable()
    seen: list[str] = []
    publisher = Consumer(
        name="live_publish_tail_test",
        handler=lambda events: seen.extend(str(event.resource_id) for event in events),
        start_at_tail=True,
    )
    tail = stream_tail()
    assert consumer_run_batch(consumer=publisher).position == tail
    assert seen == []
    run = post(api, "/api/flow_runs/", {"flow": flow["id"]})
    wait_readable()
    consumer_run_batch(consumer=publisher)
    assert seen == [run["id"]]


def test_the_embedded_publisher_removes_a_cursor_left_by_the_redis_mode(monkeypatch) -> None:
    """Switching Redis off and on again later must not replay every change made in between to the pages."""
    monkeypatch.setattr(publish, "_redis_cursor_checked", False)
    ConsumerCursor.objects.create(name="live_publish", event_id=1)
    publish.live_events_publish([])
    assert not ConsumerCursor.objects.filter(name="live_publish").exists()

"""The live websockets of a real `orchestrator server start --workers 2`: embedded (each server process publishes
to its own connections) and with the Redis channel layer (one publisher per event for all processes). A client
logged in through the admin watches a run it moves through the API; one without a session is refused (403), an
unknown run is closed with 4404 and its reason; a script watches with a key in the Authorization header."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from tests.live.realtime import admin_credentials, admin_session_cookie, websocket_url
from tests.support.server import RunningServer, start_server, throwaway_database

pytestmark = pytest.mark.e2e

# Its own Redis database number, so the suite's layer never meets another application's keys.
REDIS_URL = "redis://127.0.0.1:6379/13"
SOCKETS = 4  # with 2 workers sharing the listening socket, a few connections land on both
RECEIVE_TIMEOUT_SECONDS = 10.0


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> Iterator[tuple[Path, str, dict[str, tuple[str, str]]]]:
    """One home and database for both servers: the second starts without migrating (and the admin user the first
    one created, whose password it printed, is kept)."""
    home: Path = tmp_path_factory.mktemp("live")
    with throwaway_database(home) as database_url:
        yield home, database_url, {}


@pytest.fixture(scope="module", params=["embedded", "redis"])
def server(request, database) -> Iterator[tuple[RunningServer, str]]:
    home, database_url, admin = database
    settings = {"ORCHESTRATOR_REDIS_URL": REDIS_URL} if request.param == "redis" else {}
    args = ["--workers", "2", "--no-services"]
    with start_server(home=home, database_url=database_url, args=args, settings=settings) as running:
        if not admin:
            admin["credentials"] = admin_credentials(running.output())
        yield running, admin_session_cookie(running.base_url, *admin["credentials"])


async def next_message(socket: ClientConnection) -> dict:
    return json.loads(await asyncio.wait_for(socket.recv(), RECEIVE_TIMEOUT_SECONDS))


def test_a_run_moved_through_the_api_reaches_every_open_socket_once_in_order(server) -> None:
    """What a live page sees of a run, across server processes: each state once, in order, as the REST API shows
    it, and the run page gets its log lines. In Redis mode a second publisher would show as a repeated message.
    Each change waits for its messages before the next is made (changes that fall in one publisher batch are sent
    once, as the later state)."""
    running, cookie = server
    base = running.base_url
    headers = {"Cookie": cookie}
    api = httpx.Client(base_url=running.api_url, timeout=10, headers=running.headers)
    flow = api.post("/flows/", json={"name": f"live-{uuid.uuid4().hex[:8]}"}).json()

    async def scenario() -> None:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(websocket_url(base, "/ws/flow-runs/")):
                pass
        assert refused.value.response.status_code == 403

        unknown = uuid.uuid4()
        async with connect(websocket_url(base, f"/ws/flow-runs/{unknown}/"), additional_headers=headers) as socket:
            with pytest.raises(ConnectionClosedError) as closed:
                await socket.recv()
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4404, f"no flow run with id {unknown}")

        lists = [
            await connect(websocket_url(base, "/ws/flow-runs/"), additional_headers=headers) for _ in range(SOCKETS)
        ]
        run = api.post("/flow_runs/", json={"flow": flow["id"], "tags": ["live"]}).json()
        for socket in lists:
            assert await next_message(socket) == {"type": "flow_run", "data": run}
        page = await connect(websocket_url(base, f"/ws/flow-runs/{run['id']}/"), additional_headers=headers)

        answer = api.post(f"/flow_runs/{run['id']}/set_state/", json={"state": {"type": "RUNNING"}}).json()
        assert answer["status"] == "ACCEPT"
        for socket in lists:
            message = await next_message(socket)
            assert (message["data"]["id"], message["data"]["state"]) == (run["id"], answer["state"])
        message = await next_message(page)
        if message["data"]["state_name"] == "Pending":  # the page opened before its worker published the creation
            message = await next_message(page)
        assert message["data"]["state"] == answer["state"]

        lines = [{"flow_run": run["id"], "message": f"line {number}"} for number in range(3)]
        assert api.post("/logs/", json=lines).status_code == 201
        logs = api.get(f"/logs/?flow_run={run['id']}").json()["results"]
        assert [await next_message(page) for _ in lines] == [{"type": "log", "data": line} for line in logs]

        assert api.post(f"/flow_runs/{run['id']}/set_state/", json={"state": {"type": "COMPLETED"}}).status_code == 201
        final = {"type": "flow_run", "data": api.get(f"/flow_runs/{run['id']}/").json()}
        assert final["data"]["state_name"] == "Completed"
        for socket in [*lists, page]:
            assert await next_message(socket) == final
        for socket in [*lists, page]:
            assert await _nothing_more(socket)
            await socket.close()

    started = time.monotonic()
    asyncio.run(scenario())
    api.close()
    assert time.monotonic() - started < 30


async def _nothing_more(socket: ClientConnection) -> bool:
    """No message follows within a few poll intervals (a second publisher would send its copy by then)."""
    try:
        await asyncio.wait_for(socket.recv(), 0.5)
    except TimeoutError:
        return True
    return False


def test_a_script_watches_with_a_read_key_in_the_header_and_other_keys_are_refused(server) -> None:
    """What a script (no browser session) sends: `Authorization: Bearer <key>` in the handshake; a `read` key is
    enough. No key, an unknown key, a key in the URL and a revoked key get 403."""
    running, _ = server
    base = running.base_url
    api = httpx.Client(base_url=running.api_url, timeout=10, headers=running.headers)
    name = f"watcher-{uuid.uuid4().hex[:8]}"
    key = api.post("/api_keys/", json={"name": name, "scope": "read"}).json()["key"]
    flow = api.post("/flows/", json={"name": f"keyed-{uuid.uuid4().hex[:8]}"}).json()
    with_key = {"Authorization": f"Bearer {key}"}

    async def status_of(path: str, headers: dict[str, str]) -> int:
        try:
            async with connect(websocket_url(base, path), additional_headers=headers):
                return 101
        except InvalidStatus as refused:
            return refused.response.status_code

    async def scenario() -> None:
        async with connect(websocket_url(base, "/ws/flow-runs/"), additional_headers=with_key) as socket:
            run = api.post("/flow_runs/", json={"flow": flow["id"]}).json()
            assert await next_message(socket) == {"type": "flow_run", "data": run}
        assert await status_of("/ws/flow-runs/", {}) == 403
        assert await status_of("/ws/flow-runs/", {"Authorization": "Bearer orch_" + "x" * 43}) == 403
        assert await status_of(f"/ws/flow-runs/?key={key}", {}) == 403
        assert api.delete(f"/api_keys/{name}/").status_code == 204
        deadline = time.monotonic() + 10  # each server process trusts what it read of a key for 2 seconds
        while await status_of("/ws/flow-runs/", with_key) != 403:
            assert time.monotonic() < deadline, "a revoked key still opens sockets"
            await asyncio.sleep(0.5)

    asyncio.run(scenario())
    api.close()

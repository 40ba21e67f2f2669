"""The one client (orchestrator/client/): the same answers in-process and over HTTP, retries and timeouts as
settings, and every failure one line naming the request and the cause, from the SDK, the CLI and a flow script."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from apps.runs.models import TaskRun
from orchestrator import config
from orchestrator.client import (
    ClientError,
    ClientSettings,
    Conflict,
    InvalidInput,
    NotFound,
    OrchestratorClient,
    ServerError,
    ServerUnreachable,
)
from orchestrator.states import Completed, Pending, Running
from tests.support.cli import orchestrator_env, run_orchestrator
from tests.support.server import RunningServer, sqlite_pass_only

FAST = ClientSettings(retries=2, timeout_seconds=5, connect_timeout_seconds=5, backoff_seconds=0.01)


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class CannedServer(http.server.ThreadingHTTPServer):
    """A tiny loopback HTTP server answering every request with one canned status and body; counts requests."""

    def __init__(self, status: int, body: str, content_type: str = "text/html", delay: float = 0.0) -> None:
        canned = self
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                canned.requests += 1
                if delay:
                    threading.Event().wait(delay)
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api"


@pytest.fixture
def canned() -> Iterator[list[CannedServer]]:
    servers: list[CannedServer] = []
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def one_line(text: str) -> str:
    assert text.endswith("\n") and text.count("\n") == 1, text
    return text.strip()


# -- failures: one line naming the URL and the cause ---------------------------------------------------------------
@sqlite_pass_only
def test_a_server_that_is_down_is_unreachable_after_the_retries():
    """The most common mistake (no server started) must say so, not print a connection traceback."""
    url = f"http://127.0.0.1:{free_port()}/api"
    client = OrchestratorClient(url, settings=FAST)
    with pytest.raises(ServerUnreachable) as caught:
        client.read_work_pools()
    assert caught.value.status_code is None
    assert str(caught.value) == (
        f"GET {url}/work_pools/: cannot reach the API: connection refused; "
        "is the server running (`orchestrator server start`)? (3 attempts)"
    )


@sqlite_pass_only
def test_a_host_name_that_does_not_resolve_names_the_setting_to_check():
    client = OrchestratorClient("http://no-such-host.invalid/api", settings=FAST)
    with pytest.raises(ServerUnreachable) as caught:
        client.ensure_flow("etl")
    assert "the host name 'no-such-host.invalid' does not resolve; check ORCHESTRATOR_API_URL" in str(caught.value)


@sqlite_pass_only
def test_a_server_that_does_not_answer_in_time_times_out(canned):
    server = CannedServer(200, "{}", "application/json", delay=2.0)
    canned.append(server)
    settings = ClientSettings(retries=0, timeout_seconds=0.3, connect_timeout_seconds=1)
    with pytest.raises(ServerUnreachable, match=r"cannot reach the API: no answer within 0.3 s$"):
        OrchestratorClient(server.api_url, settings=settings).read_work_pools()


@sqlite_pass_only
def test_an_html_404_is_not_the_api(canned):
    """A proxy or another web server at the URL: not "not found", but a URL to check."""
    server = CannedServer(404, "<html><body><h1>Not Found</h1></body></html>")
    canned.append(server)
    with pytest.raises(ClientError) as caught:
        OrchestratorClient(server.api_url, settings=FAST).read_work_pool("default")
    assert not isinstance(caught.value, NotFound) and caught.value.status_code == 404
    assert str(caught.value) == (
        f"GET {server.api_url}/work_pools/default/: answered 404 with a page that is not the API's; "
        "check ORCHESTRATOR_API_URL"
    )
    assert server.requests == 1  # a refusal is not retried


@sqlite_pass_only
def test_a_5xx_is_retried_then_reported_in_one_line(canned):
    server = CannedServer(500, "<html><title>Server Error</title>\n<body>boom</body></html>")
    canned.append(server)
    with pytest.raises(ServerError) as caught:
        OrchestratorClient(server.api_url, settings=FAST).ensure_flow("etl")
    assert server.requests == 3
    assert str(caught.value) == (
        f"POST {server.api_url}/flows/: the server failed after 3 attempts: "
        "answered 500 Internal Server Error with an HTML page"
    )
    assert "\n" not in str(caught.value)


@sqlite_pass_only
def test_a_worker_poll_passes_fewer_retries(canned):
    server = CannedServer(503, "busy", "text/plain")
    canned.append(server)
    client = OrchestratorClient(server.api_url, settings=FAST, retries=0)
    with pytest.raises(ServerError, match="the server failed: answered 503 Service Unavailable with busy$"):
        client.read_work_pools()
    assert server.requests == 1


class ScriptedServer(http.server.ThreadingHTTPServer):
    """A loopback server answering its requests with the given statuses in turn (the last one from then on), JSON
    bodies; `port` picks the port (a restart on the same address)."""

    def __init__(self, statuses: list[int], port: int = 0) -> None:
        scripted = self
        self.requests = 0
        self.allow_reuse_address = True

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                status = statuses[min(scripted.requests, len(statuses) - 1)]
                scripted.requests += 1
                payload = b'{"results": [], "message": "the database is unavailable: x; retry"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


@sqlite_pass_only
def test_a_server_that_answered_before_is_waited_for_through_its_restart():
    """A server restart (docs/faults.md) must not fail the flows of its clients: refused connections from a server
    that answered before are retried past the retries, up to ORCHESTRATOR_CLIENT_OUTAGE_SECONDS."""
    server = ScriptedServer([200])
    port = server.server_address[1]
    client = OrchestratorClient(f"http://127.0.0.1:{port}/api", settings=FAST)
    assert client.read_work_pools() == []
    server.close()
    restarted: list[ScriptedServer] = []
    timer = threading.Timer(1.0, lambda: restarted.append(ScriptedServer([200], port=port)))
    timer.start()
    try:
        assert client.read_work_pools() == []  # FAST alone gives up after 3 attempts within a tenth of a second
    finally:
        timer.join()
        for each in restarted:
            each.close()


@sqlite_pass_only
def test_503s_of_a_database_outage_are_retried_until_it_ends_and_not_past_the_outage_window():
    server = ScriptedServer([503] * 8 + [200])
    try:
        client = OrchestratorClient(server.api_url, settings=FAST)
        assert client.read_work_pools() == []
        assert server.requests == 9
    finally:
        server.close()
    server = ScriptedServer([503])
    try:
        settings = ClientSettings(retries=2, backoff_seconds=0.01, outage_seconds=0.5)
        with pytest.raises(ServerError, match=r"failed after \d+ attempts: the database is unavailable: x; retry$"):
            OrchestratorClient(server.api_url, settings=settings).read_work_pools()
        assert server.requests > 3
    finally:
        server.close()


@pytest.mark.parametrize(
    ("body", "call", "sent", "problem"),
    [
        ("[1]", lambda client: client.read_work_pool("a"), "GET work_pools/a/", "is a list, not a JSON object"),
        ('{"results": {}}', lambda client: client.read_work_pools(), "GET work_pools/", "a dict, not a list of"),
        ("{}", lambda client: client.read_work_pools(), "GET work_pools/", "is nothing, not a list of JSON objects"),
        ('"etl"', lambda client: client.ensure_flow("etl"), "POST flows/", "is a str, not a JSON object"),
    ],
)
@sqlite_pass_only
def test_an_answer_of_the_wrong_shape_is_one_line_naming_the_request(canned, body, call, sent, problem):
    """Another JSON API at the URL: a ServerError naming the request, not a KeyError or TypeError later."""
    server = CannedServer(200, body, "application/json")
    canned.append(server)
    with pytest.raises(ServerError) as caught:
        call(OrchestratorClient(server.api_url, settings=FAST))
    message = str(caught.value)
    method, _, path = sent.partition(" ")
    assert message.startswith(f"{method} {server.api_url}/{path}: the answer ")
    assert problem in message and message.endswith("is ORCHESTRATOR_API_URL this orchestrator's API?")
    assert "\n" not in message


@pytest.mark.e2e
@sqlite_pass_only
def test_a_url_without_api_says_it_must_end_in_api(orchestrator_server_process: RunningServer, tmp_path: Path):
    """`http://host:4200` instead of `http://host:4200/api`: the server answers its HTML 404 page."""
    base = orchestrator_server_process.base_url
    with pytest.raises(ClientError) as caught:
        OrchestratorClient(base, settings=FAST).read_work_pools()
    assert str(caught.value) == (
        f"GET {base}/work_pools/?limit=1000: answered 404 with an HTML page: "
        "ORCHESTRATOR_API_URL must end in /api (e.g. http://127.0.0.1:4200/api)"
    )
    result = run_orchestrator("work-pool", "ls", env=orchestrator_env(tmp_path, ORCHESTRATOR_API_URL=base))
    assert result.returncode == 1
    assert one_line(result.stderr) == f"error: {caught.value}"


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_4xx_answers_are_the_apis_message_in_both_modes(orchestrator_server_process: RunningServer):
    """The in-process transport runs the API's own code: its refusals read exactly as the server's."""
    over_http = OrchestratorClient(
        orchestrator_server_process.api_url, orchestrator_server_process.api_key, settings=FAST
    )
    messages = {}
    for mode, client in (("http", over_http), ("in-process", None)):
        client = client or _in_process_client()
        client.create_work_pool({"name": f"pool-{mode}", "type": "process"})
        with pytest.raises(Conflict) as taken:
            client.create_work_pool({"name": f"pool-{mode}", "type": "process"})
        with pytest.raises(InvalidInput) as invalid:
            client.create_work_pool({"name": "x", "type": "kubernetes"})
        with pytest.raises(NotFound) as missing:
            client.read_work_pool("absent")
        messages[mode] = (taken.value.message.replace(mode, "M"), invalid.value.message, missing.value.message)
        assert (taken.value.status_code, invalid.value.status_code, missing.value.status_code) == (409, 400, 404)
    assert messages["http"] == messages["in-process"]
    assert "already exists" in messages["http"][0] and "type" in messages["http"][1]
    assert messages["http"][2] == "no work pool named 'absent'"
    # Over HTTP the line names the request; in-process there is no URL to check.
    assert str(missing.value) == "no work pool named 'absent'"


def _in_process_client() -> OrchestratorClient:
    return OrchestratorClient(None, settings=FAST)


pytest_in_process = pytest.mark.django_db(transaction=True)


@sqlite_pass_only
def test_a_flow_script_whose_server_is_down_prints_one_line(tmp_path: Path):
    """`python flow.py` used to print a 69-line httpx.ConnectError."""
    script = tmp_path / "flow.py"
    script.write_text("from orchestrator import flow\n\n@flow\ndef hello():\n    return 1\n\nhello()\n")
    url = f"http://127.0.0.1:{free_port()}/api"
    env = orchestrator_env(
        tmp_path / "home", ORCHESTRATOR_API_URL=url, ORCHESTRATOR_CLIENT_RETRIES="1", ORCHESTRATOR_LOGGING_LEVEL="ERROR"
    )
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert one_line(result.stderr) == (
        f"error: POST {url}/flows/: cannot reach the API: connection refused; "
        "is the server running (`orchestrator server start`)? (2 attempts)"
    )


@sqlite_pass_only
def test_a_flow_script_with_a_malformed_client_setting_prints_one_line(tmp_path: Path):
    script = tmp_path / "flow.py"
    script.write_text("from orchestrator import flow\n\n@flow\ndef hello():\n    return 1\n\nhello()\n")
    env = orchestrator_env(tmp_path / "home", ORCHESTRATOR_CLIENT_RETRIES="many")
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert one_line(result.stderr) == "error: ORCHESTRATOR_CLIENT_RETRIES (env): 'many' is not a whole number"


@sqlite_pass_only
def test_the_cli_with_its_server_down_prints_one_line(tmp_path: Path):
    url = f"http://127.0.0.1:{free_port()}/api"
    env = orchestrator_env(tmp_path, ORCHESTRATOR_API_URL=url, ORCHESTRATOR_CLIENT_RETRIES="0")
    for args in (("work-pool", "ls"), ("deployment", "ls"), ("flow-run", "ls")):
        result = run_orchestrator(*args, env=env)
        assert result.returncode == 1, args
        assert one_line(result.stderr).startswith(f"error: GET {url}/") and "connection refused" in result.stderr


# -- settings --------------------------------------------------------------------------------------------------
def test_retries_and_timeouts_are_settings(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ORCHESTRATOR_CLIENT_RETRIES", "0")
    monkeypatch.setenv("ORCHESTRATOR_CLIENT_TIMEOUT_SECONDS", "2.5")
    settings = ClientSettings.from_config()
    assert (settings.retries, settings.timeout_seconds, settings.connect_timeout_seconds) == (0, 2.5, 10.0)
    assert (settings.backoff_seconds, settings.backoff_cap_seconds) == (0.1, 5.0)
    monkeypatch.delenv("ORCHESTRATOR_CLIENT_RETRIES")
    assert ClientSettings.from_config().retries == 5


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("ORCHESTRATOR_CLIENT_RETRIES", "-1", "must be 0 or more"),
        ("ORCHESTRATOR_CLIENT_RETRIES", "many", "'many' is not a whole number"),
        ("ORCHESTRATOR_CLIENT_TIMEOUT_SECONDS", "0", "must be greater than 0"),
        ("ORCHESTRATOR_CLIENT_BACKOFF_CAP_SECONDS", "soon", "'soon' is not a number"),
    ],
)
def test_bad_client_settings_are_one_line_naming_the_setting(monkeypatch, name, value, problem):
    monkeypatch.setenv(name, value)
    with pytest.raises(config.ConfigError) as caught:
        ClientSettings.from_config()
    assert str(caught.value) == f"{name} (env): {problem}"
    assert f"{name} (env): {problem}" in config.problems()


# -- the in-process shortcut records what the API records ------------------------------------------------------
@pytest_in_process
def test_direct_recording_gives_the_same_runs_and_answers_as_the_api():
    """The one call that skips the request (in_process.record_task_runs) must not drift from the API's path."""
    client = _in_process_client()
    flow_id = client.ensure_flow("recorded")
    results = {}
    for direct in (True, False):
        client.direct_recording = direct
        flow_run = client.create_flow_run(
            flow_id=flow_id, name=f"direct-{direct}", parameters={}, tags=[], state=Pending(), next_state=Running()
        )
        started = datetime.now(UTC) - timedelta(seconds=2)
        pending, running = Pending(), Running()
        pending.timestamp, running.timestamp = started, started + timedelta(milliseconds=10)
        finished = Completed()
        finished.timestamp = started + timedelta(seconds=1)
        run_id, other_id = str(uuid.uuid4()), str(uuid.uuid4())
        records = [
            {"id": run_id, "flow_run": flow_run.id, "task_key": "t", "dynamic_key": "0", "name": "t-0",
             "tags": [], "task_inputs": {}, "empirical_policy": {}, "states": [pending, running]},
            {"id": run_id, "flow_run": flow_run.id, "task_key": "t", "dynamic_key": "0", "name": "t-0",
             "tags": [], "task_inputs": {}, "empirical_policy": {}, "states": [Pending()]},
            {"id": other_id, "flow_run": str(uuid.uuid4()), "task_key": "u", "dynamic_key": "0", "name": "u-0",
             "tags": [], "task_inputs": {}, "empirical_policy": {}, "states": [Pending()]},
        ]  # fmt: skip
        answers = client.record_task_runs(records, [{"task_run": run_id, "state": finished}])
        again = client.record_task_runs(records[:1], [])
        run = TaskRun.objects.get(pk=run_id)
        history = [(s.name, s.timestamp - started) for s in run.states.order_by("timestamp")]
        results[direct] = (
            [_comparable(answer, started) for answer in answers[0]],
            [_comparable(answer, started) for answer in answers[1]],
            [_comparable(answer, started) for answer in again[0]],
            history,
            (run.state_name, run.run_count, run.total_run_time, run.end_time - started),
        )
    assert results[True] == results[False]
    assert [a["status"] for a in results[True][0]] == ["ACCEPT", "EXISTS", "NOT_FOUND"]
    assert [name for name, _ in results[True][3]] == ["Pending", "Running", "Completed"]


def _comparable(answer: dict, started: datetime) -> dict:
    """An answer without what differs between two runs (ids, transition ids), its state's time relative."""
    answer = {**answer, "id": "ID", "task_run": "ID"}
    if answer.get("state"):
        state = dict(answer["state"], id="ID")
        state["timestamp"] = datetime.fromisoformat(state["timestamp"]) - started
        state["state_details"] = {k: v for k, v in state["state_details"].items() if k != "transition_id"}
        answer["state"] = state
    return answer

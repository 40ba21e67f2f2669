"""A batch of log lines whose answer was lost (the server committed it, then the connection died) is sent again
under its key and stored once (docs/faults.md)."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from orchestrator.client import OrchestratorClient
from orchestrator.sdk.logging import RunRecordShipper
from tests.support.server import RunningServer, sqlite_pass_only

pytestmark = [pytest.mark.e2e, sqlite_pass_only]  # the server's part is tested on both databases in tests/api


class AnswerLosingProxy(http.server.ThreadingHTTPServer):
    """Forwards every request to the server; for the first `lose` POSTs of log lines it cuts the connection after
    the server answered, so the client never learns that they were stored."""

    def __init__(self, target: str, lose: int) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.target = target
        self.lose = lose
        self.log_keys: list[str | None] = []  # the Idempotency-Key of each POST of log lines, in order

    def handle_error(self, request: object, client_address: object) -> None:
        """A connection cut on purpose is expected (the default prints a traceback through print, which another
        test of this process may have replaced)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(http.server.BaseHTTPRequestHandler):
    server: AnswerLosingProxy
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        skipped = {"host", "content-length", "connection"}
        headers = {name: value for name, value in self.headers.items() if name.lower() not in skipped}
        answer = httpx.request(self.command, self.server.target + self.path, content=body, headers=headers)
        if self.command == "POST" and self.path.rstrip("/").endswith("/logs"):
            self.server.log_keys.append(self.headers.get("Idempotency-Key"))
            if self.server.lose > 0:
                self.server.lose -= 1
                self.close_connection = True
                return  # the server stored the lines; the client gets no answer
        self.send_response(answer.status_code)
        self.send_header("Content-Type", answer.headers.get("content-type", "application/json"))
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def proxy(orchestrator_server_process: RunningServer) -> Iterator[AnswerLosingProxy]:
    target = orchestrator_server_process.api_url.removesuffix("/api")
    server = AnswerLosingProxy(target, lose=1)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_log_batch_whose_answer_was_lost_is_stored_once(
    orchestrator_server_process: RunningServer, proxy: AnswerLosingProxy
) -> None:
    """Before batches had keys, the shipper's second send stored every line of the batch a second time."""
    server = orchestrator_server_process
    with server.api_client() as api:
        flow = api.post("flows/", json={"name": "resent-logs"}).json()
        run = api.post("flow_runs/", json={"flow": flow["id"]}).json()
        # No retries inside the client: the lost answer puts the batch in the shipper's backlog, sent again later.
        client = OrchestratorClient(api_url=proxy.url + "/api", api_key=server.api_key, retries=0)
        shipper = RunRecordShipper(client)
        for number in range(3):
            shipper.put({"flow_run": run["id"], "message": f"line {number}", "level": 20})
        shipper.flush(timeout=30)
        client.close()
        lines = api.get("logs/", params={"flow_run": run["id"], "limit": 50}).json()["results"]
    assert [line["message"] for line in lines] == ["line 0", "line 1", "line 2"]
    assert len(proxy.log_keys) == 2 and proxy.log_keys[0] == proxy.log_keys[1] and proxy.log_keys[0], proxy.log_keys


def test_flush_waits_for_its_own_lines_not_for_other_runs_that_keep_logging(
    orchestrator_server_process: RunningServer,
) -> None:
    """A flow's end flushes the process's shipper: with other flows logging all the time the queue is never empty,
    and a flush that waited for an empty queue held every flow's end until the others paused (soak p99 ~100 s)."""
    server = orchestrator_server_process
    with server.api_client() as api:
        flow = api.post("flows/", json={"name": "busy-neighbours"}).json()
        busy, quiet = (api.post("flow_runs/", json={"flow": flow["id"]}).json() for _ in range(2))
        client = OrchestratorClient(api_url=server.api_url, api_key=server.api_key)
        shipper = RunRecordShipper(client)
        stop = threading.Event()

        def neighbour() -> None:
            number = 0
            while not stop.is_set():
                shipper.put({"flow_run": busy["id"], "message": f"neighbour {number}", "level": 20})
                number += 1
                time.sleep(0.001)

        thread = threading.Thread(target=neighbour, daemon=True)
        thread.start()
        try:
            time.sleep(0.5)
            shipper.put({"flow_run": quiet["id"], "message": "mine", "level": 20})
            started = time.monotonic()
            shipper.flush(timeout=20)
            took = time.monotonic() - started
            mine = api.get("logs/", params={"flow_run": quiet["id"]}).json()["results"]
        finally:
            stop.set()
            thread.join()
        client.close()
    assert [line["message"] for line in mine] == ["mine"], "flush returned before its line was sent"
    assert took < 5, f"flush waited {took:.1f} s for lines queued after it"

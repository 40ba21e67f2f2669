"""Real receivers on loopback for notification tests (the edge of the world): an HTTP server that records what it
is sent and can answer 500, and an SMTP server (aiosmtpd) that records the mails."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    at: float  # time.time() when it arrived
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class HttpReceiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    fail_first: int = 0  # answer 500 to this many requests, then 200
    always_fail: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self, *, fail_first: int = 0, always_fail: bool = False) -> None:
        with self.lock:
            self.requests.clear()
            self.fail_first = fail_first
            self.always_fail = always_fail

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """Wait until `count` requests arrived (AssertionError with what came, after `timeout`)."""
        wait_until(lambda: len(self.requests) >= count, timeout, lambda: f"{len(self.requests)} of {count} requests")
        return list(self.requests)


def wait_until(check: Callable[[], bool], timeout: float, describe: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s: {describe()}")
        time.sleep(0.02)


@contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            with receiver.lock:
                receiver.requests.append(Received(time.time(), self.path, dict(self.headers.items()), body))
                failing = receiver.always_fail or receiver.fail_first > 0
                if receiver.fail_first > 0:
                    receiver.fail_first -= 1
            answer = b"receiver down" if failing else b"ok"
            self.send_response(500 if failing else 200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class MailReceiver:
    host: str
    port: int
    messages: list[Any] = field(default_factory=list)


@contextmanager
def smtp_receiver() -> Iterator[MailReceiver]:
    from email import message_from_bytes

    from aiosmtpd.controller import Controller

    received = MailReceiver(host="127.0.0.1", port=0)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
            mail = message_from_bytes(envelope.content)
            received.messages.append((list(envelope.rcpt_tos), mail))
            return "250 OK"

    with socket.socket() as probe:  # aiosmtpd checks it started by connecting to its port: it needs a real one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    received.port = port
    try:
        yield received
    finally:
        controller.stop()

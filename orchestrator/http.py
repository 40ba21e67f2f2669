"""Serve Django's WSGI handler over ASGI with one hand-off to a small, fixed pool of threads per request.

Why not Django's ASGI handler: our views and middleware are synchronous (DRF), and under ASGI Django hands
each request between the event loop and threads about a dozen times, in a new thread per request, so every
request also opened a new database connection (measured: 3-5 ms of overhead per request, and 16 concurrent
clients exhausted PostgreSQL's connection limit). asgiref's `WsgiToAsgi` adapter failed here under
concurrent keep-alive load ("CurrentThreadExecutor already quit or is broken").

Here each HTTP request is read whole (bounded by API_MAX_BODY_BYTES), handled by the WSGI application on one
of `threads` long-lived threads (each keeps its persistent database connection), and its response is sent
whole. Websocket and other scopes are for other applications (a protocol router in front of this one).
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class WsgiOverAsgi:
    def __init__(self, wsgi_application: Callable, *, threads: int = 4, max_body_bytes: int | None = None):
        self.wsgi_application = wsgi_application
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="orchestrator-http")
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise ValueError(f"WsgiOverAsgi serves HTTP only, not {scope['type']!r}")
        body = await self._read_body(receive)
        if body is None:
            await self._send(send, 413, [(b"content-type", b"application/json")], _TOO_LARGE)
            return
        environ = self._environ(scope, body)
        loop = asyncio.get_running_loop()
        status, headers, content = await loop.run_in_executor(self.executor, self._call_application, environ)
        await self._send(send, status, headers, content)

    async def _read_body(self, receive: Callable) -> bytes | None:
        """The request body, or None when it is larger than the limit (the rest is not read)."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if self.max_body_bytes is not None and size > self.max_body_bytes:
                return None
            parts.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(parts)

    @staticmethod
    def _environ(scope: dict, body: bytes) -> dict[str, Any]:
        server = scope.get("server") or ("localhost", 80)
        client = scope.get("client") or ("", 0)
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": scope["method"],
            "SCRIPT_NAME": root.encode("utf-8").decode("latin-1"),
            # WSGI carries the path as bytes decoded as latin-1; Django decodes it back to UTF-8.
            "PATH_INFO": path.encode("utf-8").decode("latin-1"),
            "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
            "SERVER_NAME": str(server[0]),
            "SERVER_PORT": str(server[1] or 80),
            "REMOTE_ADDR": str(client[0]),
            "REMOTE_PORT": str(client[1]),
            "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scope.get("scheme", "http"),
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "CONTENT_LENGTH": str(len(body)),
        }
        for raw_name, raw_value in scope.get("headers", []):
            name = raw_name.decode("latin-1").upper().replace("-", "_")
            value = raw_value.decode("latin-1")
            if name == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
                continue
            if name == "CONTENT_LENGTH":
                continue  # the body was read whole: its real length is above
            key = f"HTTP_{name}"
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _call_application(self, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
            return lambda data: captured.setdefault("written", []).append(data)

        result = self.wsgi_application(environ, start_response)
        try:
            content = b"".join([*captured.get("written", []), *result])
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return captured["status"], captured["headers"], content

    @staticmethod
    async def _send(send: Callable, status: int, headers: list[tuple[bytes, bytes]], content: bytes) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content, "more_body": False})

    @staticmethod
    async def _lifespan(receive: Callable, send: Callable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


_TOO_LARGE = b'{"error": "payload_too_large", "message": "request body too large"}'

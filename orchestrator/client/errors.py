"""The client's errors: one line each, naming the request (method and URL) and the cause, never a traceback.

`ClientError` is the base; `status_code` is the API's answer (None when there was none) and `message` the cause
alone (the API's `message` for a JSON error), so callers can match on either.
"""

from __future__ import annotations

import sys
import threading
from types import TracebackType

from orchestrator.config import ConfigError


class ClientError(Exception):
    """A request to the orchestrator API failed."""

    def __init__(self, message: str, *, status_code: int | None = None, request: str = "") -> None:
        self.message = message
        self.status_code = status_code
        self.request = request  # "POST http://127.0.0.1:4200/api/flow_runs/", or "POST /api/flow_runs/ (in-process)"
        super().__init__(f"{request}: {message}" if request else message)

    @property
    def is_refusal(self) -> bool:
        """The server refused the request itself (4xx other than 429): sending it again changes nothing."""
        return self.status_code is not None and 400 <= self.status_code < 500 and self.status_code != 429


class ServerUnreachable(ClientError):
    """No answer: nothing listens there, the host name does not resolve, or the server did not answer in time."""


class NotFound(ClientError):
    """404: the object does not exist (or the URL is not the API's)."""


class Conflict(ClientError):
    """409: the request conflicts with the current state (e.g. a name already taken)."""


class InvalidInput(ClientError):
    """400 / 422 and other refusals: the request's content is wrong."""


class Unauthorized(ClientError):
    """401: no key, or one the server does not accept (unknown, revoked, expired): check ORCHESTRATOR_API_KEY."""


class Forbidden(ClientError):
    """403: the key (or the user) is known, and its scope does not cover the request."""


class SlotsUnavailable(ClientError):
    """423: no free concurrency slot within the time asked."""


class ServerError(ClientError):
    """The server answered 5xx (or 429) on every attempt."""


_hook_lock = threading.Lock()
_hook_installed = False


def install_excepthook() -> None:
    """Print an uncaught ClientError (or a malformed setting) as one `error: ...` line instead of a traceback (a
    flow script run with `python flow.py` whose server is down); any other exception goes to the hook that was
    there before."""
    global _hook_installed
    with _hook_lock:
        if _hook_installed:
            return
        previous = sys.excepthook

        def hook(kind: type[BaseException], value: BaseException, traceback: TracebackType | None) -> None:
            if isinstance(value, ClientError | ConfigError):
                sys.stderr.write(f"error: {value}\n")
                sys.stderr.flush()
                return
            previous(kind, value, traceback)

        sys.excepthook = hook
        _hook_installed = True

"""The exception hierarchy users see: each maps to one HTTP status and a readable JSON body."""

from __future__ import annotations


class OrchestratorError(Exception):
    status_code = 400
    code = "error"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(OrchestratorError):
    status_code = 400
    code = "invalid_input"


class NotFound(OrchestratorError):
    status_code = 404
    code = "not_found"


class Conflict(OrchestratorError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(OrchestratorError):
    status_code = 413
    code = "payload_too_large"


class DatabaseUnavailable(OrchestratorError):
    """The database did not answer (restarting, unreachable, out of connections): the request may succeed later."""

    status_code = 503
    code = "database_unavailable"
    retry_after_seconds = 1

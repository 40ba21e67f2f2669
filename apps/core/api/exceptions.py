"""One place that turns every error into JSON: {"error": code, "message": "...", "fields": {...}}."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from django.core.exceptions import DisallowedHost, PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.settings import api_settings

from apps.core.errors import DatabaseUnavailable, OrchestratorError

logger = logging.getLogger("apps.core.api")


def _join(prefix: str, key) -> str:
    """`state` + `type` -> `state.type`; `task_inputs.x` + 0 -> `task_inputs.x[0]`; non-field errors stay at prefix."""
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    if key == api_settings.NON_FIELD_ERRORS_KEY:
        return prefix
    return f"{prefix}.{key}" if prefix else str(key)


def _flatten(detail, prefix: str = "") -> list[tuple[str, str]]:
    """Turn DRF's nested error detail into (field path, message) pairs."""
    if isinstance(detail, dict):
        return [pair for key, value in detail.items() for pair in _flatten(value, _join(prefix, key))]
    if isinstance(detail, list):
        if not any(isinstance(item, dict | list) for item in detail):
            return [(prefix, str(item)) for item in detail]
        return [pair for index, item in enumerate(detail) for pair in _flatten(item, _join(prefix, index))]
    return [(prefix, str(detail))]


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "message": message}
    if fields:
        body["fields"] = fields
    return body


# "connection failed: connection to server at "10.0.0.5", port 5432 failed: FATAL:  the database system is
# starting up": the cause without the address (clients need not learn where the database lives).
# SQLite reports these mistakes as OperationalError too.
_NOT_AN_OUTAGE = ("no such table", "no such column", "syntax error", "has no column named")
_ADDRESS_PREFIX = re.compile(r"^.*\bfailed:\s*(FATAL:\s*)?", re.IGNORECASE)


def database_unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """The 503 to answer for a database error that a retry may cure (connection refused or lost, the server
    starting or stopping, a locked SQLite file), or None for any other exception."""
    if not isinstance(exc, OperationalError | InterfaceError):
        return None
    if any(mistake in str(exc) for mistake in _NOT_AN_OUTAGE):
        return None  # a schema or query mistake: a retry would meet it again, so it stays a 500 with its traceback
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    cause = " ".join(_ADDRESS_PREFIX.sub("", first).split()) or first
    return DatabaseUnavailable(f"the database is unavailable: {cause}; retry")


def database_unavailable_response(error: DatabaseUnavailable) -> JsonResponse:
    response = JsonResponse(error_body(error.code, error.message), status=error.status_code)
    response["Retry-After"] = str(error.retry_after_seconds)
    return response


def exception_handler(exc, context) -> Response | None:
    unavailable = database_unavailable(exc)
    if unavailable is not None:
        response = Response(error_body(unavailable.code, unavailable.message), status=unavailable.status_code)
        response["Retry-After"] = str(unavailable.retry_after_seconds)
        return response
    if isinstance(exc, OrchestratorError):
        fields = {exc.field: [exc.message]} if exc.field else None
        message = f"{exc.field}: {exc.message}" if exc.field else exc.message
        return Response(error_body(exc.code, message, fields), status=exc.status_code)
    if isinstance(exc, Http404):
        return Response(error_body("not_found", str(exc) or "not found"), status=404)
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("payload_too_large", "request body too large"), status=413)
    if isinstance(exc, PermissionDenied):
        return Response(error_body("permission_denied", str(exc) or "permission denied"), status=403)
    if isinstance(exc, SuspiciousOperation):
        return Response(error_body("bad_request", str(exc) or "bad request"), status=400)
    if isinstance(exc, DjangoValidationError):
        exc = drf.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, drf.ValidationError):
        pairs = _flatten(exc.detail)
        field_errors: dict[str, list[str]] = {}
        for path, text in pairs:
            field_errors.setdefault(path or "body", []).append(text)
        message = "; ".join(f"{path}: {text}" if path else text for path, text in pairs) or "invalid input"
        return Response(error_body("invalid_input", message, field_errors), status=400)
    if isinstance(exc, drf.APIException):
        code = exc.default_code if isinstance(exc.default_code, str) else "error"
        detail = exc.detail if isinstance(exc.detail, str) else "; ".join(t for _, t in _flatten(exc.detail))
        response = Response(error_body(code, str(detail)), status=exc.status_code)
        if getattr(exc, "wait", None):
            response["Retry-After"] = str(max(1, int(exc.wait)))
        if getattr(exc, "auth_header", None):
            response["WWW-Authenticate"] = exc.auth_header
        return response
    return None


# Django's own message repeats the Host header; this one says what to do.
DISALLOWED_HOST_MESSAGE = (
    "this server does not answer to the host name in the request; add it to ORCHESTRATOR_ALLOWED_HOSTS"
)


def json_error_view(status: int, code: str, message: str):
    def view(request, exception=None, *args, **kwargs):
        if isinstance(exception, RequestDataTooBig):
            return JsonResponse(error_body("payload_too_large", "request body too large"), status=413)
        if isinstance(exception, DisallowedHost):
            return JsonResponse(error_body("bad_request", DISALLOWED_HOST_MESSAGE), status=400)
        if request.path.startswith("/api/") or status != 404:
            return JsonResponse(error_body(code, message), status=status)
        from django.views.defaults import page_not_found

        return page_not_found(request, exception)

    return view


bad_request = json_error_view(400, "bad_request", "bad request")
not_found = json_error_view(404, "not_found", "no such endpoint")
_internal_error = json_error_view(500, "server_error", "internal server error; the server log has the details")


def server_error(request, *args, **kwargs):
    """handler500: Django calls it while handling the exception, so a database outage met outside a view (a
    middleware loading the session, say) is still a 503 (DatabaseUnavailableMiddleware handles views)."""
    unavailable = database_unavailable(sys.exc_info()[1]) if sys.exc_info()[1] is not None else None
    if unavailable is not None:
        return database_unavailable_response(unavailable)
    return _internal_error(request, *args, **kwargs)

"""A database outage met by a view that is not DRF's (the admin, the live pages, health checks) answers the same 503
JSON error as the API's exception handler, instead of Django's 500 page (docs/faults.md)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin

from apps.core.api.exceptions import database_unavailable, database_unavailable_response


class DatabaseUnavailableMiddleware(MiddlewareMixin):
    """Turns an OperationalError or InterfaceError raised by a view into a 503 with Retry-After."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        unavailable = database_unavailable(exception)
        if unavailable is None:
            return None
        return database_unavailable_response(unavailable)

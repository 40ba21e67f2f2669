"""Middleware for the API: its clients authenticate with keys, not browser sessions, so CSRF does not apply."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class ApiCsrfExemptMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            request._dont_enforce_csrf_checks = True
        return self.get_response(request)

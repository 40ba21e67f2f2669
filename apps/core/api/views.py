"""Health, version and schema endpoints."""

import functools
import platform
from collections.abc import Callable

import django
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

import orchestrator


@extend_schema(responses=dict, auth=[])
@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
def health(request: Request) -> Response:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return Response({"status": "ok", "database": connection.vendor})


@extend_schema(responses=dict)
@api_view(["GET"])
def version(request: Request) -> Response:
    return Response(
        {
            "version": orchestrator.__version__,
            "api_version": orchestrator.API_VERSION,
            "django": django.get_version(),
            "python": platform.python_version(),
            "database": connection.vendor,
        }
    )


# The collections of the API, as `GET /api/` lists them (each supports GET on its list).
API_RESOURCES = [
    "flows",
    "flow_runs",
    "task_runs",
    "logs",
    "deployments",
    "work_pools",
    "concurrency_limits",
    "global_concurrency_limits",
    "concurrency_leases",
]


@extend_schema(responses=dict)
@api_view(["GET"])
def index(request: Request) -> Response:
    """`GET /api/`: what the API offers, with links: the banner of `server start` points here."""
    base = request.build_absolute_uri("/api/")
    return Response(
        {
            "name": "Orchestrator API",
            "version": orchestrator.API_VERSION,
            "docs": f"{base}docs/",
            "schema": f"{base}schema/",
            "health": f"{base}health/",
            "resources": {name: f"{base}{name}/" for name in API_RESOURCES},
        }
    )


def lazy_view(view_class: str, **initkwargs: object) -> Callable[..., HttpResponse]:
    """The view `view_class` (a dotted path), imported on its first request.

    For views few requests need: drf-spectacular's schema generator and Swagger page pull in about 70 modules
    (3 MB in every server worker) that the API's other requests never use.
    """

    @functools.cache
    def load() -> Callable[..., HttpResponse]:
        return import_string(view_class).as_view(**initkwargs)

    @csrf_exempt
    def view(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        return load()(request, *args, **kwargs)

    return view

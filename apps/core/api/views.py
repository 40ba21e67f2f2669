"""Health, version and schema endpoints."""

import platform

import django
from django.db import connection
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework.decorators import api_view
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

import orchestrator


@extend_schema(responses=dict)
@api_view(["GET"])
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


class SchemaView(SpectacularAPIView):
    """The OpenAPI schema (YAML, or JSON on request); its errors are JSON like every other API error."""

    def finalize_response(self, request, response, *args, **kwargs):
        if getattr(response, "exception", False):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

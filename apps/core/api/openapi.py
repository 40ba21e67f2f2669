"""The OpenAPI schema's view class: drf-spectacular's, plus how callers authenticate (docs/security.md), so the
schema, and Swagger UI's Authorize button, say to send `Authorization: Bearer <key>` (or a page's session).

REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS names this module: it is imported only when a schema is generated (the
schema view, `manage.py spectacular`, `check --deploy`), never by a server worker answering other requests.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "apps.accounts.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "an API key (`orchestrator api-key create NAME`); scopes read, write and admin",
        }


class PageSessionScheme(SessionScheme):
    """A logged-in user of the pages (their role gives the scope); writes need the CSRF token."""

    target_class = "apps.accounts.authentication.ApiSessionAuthentication"
    priority = 0


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's AutoSchema; importing this module registers the schemes above."""

"""API key reads."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.accounts.models import ApiKey
from apps.core.errors import InvalidInput, NotFound


def api_keys_all() -> QuerySet[ApiKey]:
    return ApiKey.objects.select_related("owner").order_by("name", "created")


def api_keys_filter(*, active: str | None = None) -> QuerySet[ApiKey]:
    keys = api_keys_all()
    if active is None:
        return keys
    if active.lower() not in ("true", "false"):
        raise InvalidInput("must be true or false", field="active")
    return keys.filter(revoked_at__isnull=True) if active.lower() == "true" else keys.filter(revoked_at__isnull=False)


def api_key_require(*, name: str) -> ApiKey:
    """The active key named `name` (NotFound otherwise)."""
    api_key = api_keys_all().filter(name=name, revoked_at__isnull=True).first()
    if api_key is None:
        raise NotFound(f"no active API key named {name!r}; `orchestrator api-key ls` lists them")
    return api_key

"""Who may open a live websocket: the one place that decides it (docs/live.md, docs/security.md).

A handshake is accepted from:
- a session user with a role (Viewer, Operator or Admin: apps/accounts/roles.py), what the live pages send;
- an `Authorization: Bearer <key>` header whose key is valid (every scope includes `read`), what a script sends.
  Never a key in the query string: URLs end in access logs.
- anyone, when ORCHESTRATOR_API_AUTH is off.
Everything else is refused (403). Failed key checks count towards the API's per-address limit. Every role and
every scope may read every run, so no per-run check follows.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from apps.accounts.authentication import ANYONE, Principal, bearer_key, failed_attempts, key_check, key_use_note
from apps.accounts.roles import role_of


async def scope_authenticate(scope: dict[str, Any]) -> Any | None:
    """The user or principal a websocket connects as, or None to refuse the handshake (403)."""
    if not settings.API_AUTH:
        return ANYONE
    user = scope.get("user")
    if user is not None and await database_sync_to_async(role_of)(user) is not None:
        return user
    header = _header(scope, b"authorization")
    if header is None:
        return None
    return await database_sync_to_async(_key_principal)(header, _client_address(scope))


def _key_principal(header: str, address: str) -> Principal | None:
    if failed_attempts.blocked_for(address) > 0:
        return None
    key = bearer_key(header)
    checked = key_check(key) if key is not None else None
    if checked is None or checked.principal is None or checked.record is None:
        failed_attempts.record(address)
        return None
    key_use_note(checked.record)
    return checked.principal


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _client_address(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"

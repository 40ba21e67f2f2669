"""Who may open a live websocket: the one place that decides it (docs/live.md)."""

from __future__ import annotations

from typing import Any


async def scope_authenticate(scope: dict[str, Any]) -> Any | None:
    """The user a websocket connects as, or None to refuse the handshake (403).

    Today a connection is the live pages' own: the Django session's user (AuthMiddlewareStack put it in the scope)
    must be active staff, the admin's rule. Issue 12 adds API keys here: read `Authorization: Bearer <key>` from
    `scope["headers"]` (or a `?key=` query parameter, as browsers cannot set headers on a websocket), look the key
    up and return its user when the session gives none. Staff see every run, so no per-run check follows yet."""
    user = scope.get("user")
    if user is not None and user.is_authenticated and user.is_active and user.is_staff:
        return user
    return None

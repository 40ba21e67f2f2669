"""Who is calling the API and what they may do: the one place that decides it (docs/security.md).

A request is one of:
- in-process (the SDK, CLI and workers without ORCHESTRATOR_API_URL): the WSGI environ carries the local identity,
  which only this process can set (orchestrator/client/in_process.py): the machine's owner, scope admin;
- a key: `Authorization: Bearer <key>`, looked up by its SHA-256 (cached for KEY_CACHE_SECONDS per process);
- a browser session (the live pages, the API's docs page): the user's role gives the scope (roles.py), and
  DRF checks the CSRF token on writes;
- nothing: 401, unless ORCHESTRATOR_API_AUTH is off (then everyone is admin).

A method needs `read` for GET/HEAD/OPTIONS and `write` otherwise; a view that says `required_scope = "admin"`
needs admin for everything. Failed key checks are counted per client address; past the limit, that address's
keyed requests get 429 until the window passes.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from apps.accounts.keys import key_hash, key_is_well_formed
from apps.accounts.models import SCOPE_RANK, ApiKey, Scope
from apps.accounts.roles import scope_of_user

# WSGI environ key of an in-process request's identity (set by orchestrator/client/in_process.py).
IDENTITY_KEY = "orchestrator.identity"
# How long a process trusts what it read about a key (a revocation elsewhere takes effect within this).
KEY_CACHE_SECONDS = 2.0
# A key's last use is written at most this often (a write per request would cost every request).
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class Principal:
    """The caller of an API request that is not a session's user: a key, the local process, or anyone when
    checking is off."""

    name: str
    scope: str
    key_id: Any = None
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False

    def __str__(self) -> str:
        return self.name


LOCAL_ADMIN = Principal(name="local-admin (in-process)", scope=Scope.ADMIN)
ANYONE = Principal(name="anyone (ORCHESTRATOR_API_AUTH=off)", scope=Scope.ADMIN)


@dataclass
class _CachedKey:
    key_id: Any
    name: str
    scope: str
    expires_at: datetime | None
    revoked: bool
    last_used_at: datetime | None
    read_at: float


_cache: dict[str, _CachedKey] = {}
_cache_lock = threading.Lock()


def forget_cached_keys() -> None:
    with _cache_lock:
        _cache.clear()


def _key_record(digest: str) -> _CachedKey | None:
    """What the database says of the key with this hash (None: no such key), read at most every
    KEY_CACHE_SECONDS. An unknown key is not remembered: it may be created a moment later."""
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(digest)
    if cached is not None and now - cached.read_at < KEY_CACHE_SECONDS:
        return cached
    rows = ApiKey.objects.filter(key_hash=digest).values_list(
        "id", "name", "scope", "expires_at", "revoked_at", "last_used_at", "key_hash"
    )
    found = next(iter(rows), None)
    # The index found the row by its hash; compare it in constant time all the same.
    if found is None or not hmac.compare_digest(found[6], digest):
        return None
    record = _CachedKey(found[0], found[1], found[2], found[3], found[4] is not None, found[5], now)
    with _cache_lock:
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[digest] = record
    return record


def key_use_note(record: _CachedKey) -> None:
    """Record when a key was last used (after its request was allowed: a refused request writes nothing)."""
    now = timezone.now()
    if record.last_used_at is None or now - record.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=record.key_id).update(last_used_at=now)
        record.last_used_at = now


MALFORMED_HEADER = "malformed Authorization header: expected `Bearer <key>`"


@dataclass(frozen=True)
class KeyCheck:
    """What a raw key is worth: the principal it stands for (and what the database says of it), or why not."""

    principal: Principal | None = None
    record: _CachedKey | None = None
    refused: str = ""


def bearer_key(header: str) -> str | None:
    """The key of an `Authorization: Bearer <key>` header value (None: another scheme, or no key)."""
    kind, _, key = header.partition(" ")
    key = key.strip()
    return key if kind.lower() == "bearer" and key else None


def key_check(key: str) -> KeyCheck:
    """Check a raw key (the API's Bearer header and the websockets' handshake both come here). Writes nothing: the
    caller notes the key's use (`key_use_note`) once the request it came with is allowed."""
    if not key_is_well_formed(key):
        return KeyCheck(refused=MALFORMED_HEADER)
    record = _key_record(key_hash(key))
    if record is None:
        return KeyCheck(refused="unknown API key: check ORCHESTRATOR_API_KEY")
    if record.revoked:
        return KeyCheck(refused=f"the API key {record.name!r} was revoked")
    if record.expires_at is not None and record.expires_at <= timezone.now():
        expired = record.expires_at.strftime("%Y-%m-%d %H:%M UTC")
        return KeyCheck(refused=f"the API key {record.name!r} expired on {expired}")
    principal = Principal(name=f"API key {record.name!r}", scope=record.scope, key_id=record.key_id)
    return KeyCheck(principal=principal, record=record)


class FailedAttempts:
    """Failed key checks per client address, in a sliding window, in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str, now: float) -> deque[float]:
        window = settings.API_AUTH_FAILURE_WINDOW_SECONDS
        failures = self._failures.setdefault(address, deque())
        while failures and failures[0] <= now - window:
            failures.popleft()
        return failures

    def blocked_for(self, address: str) -> float:
        """Seconds until `address` may try again (0: it may now)."""
        now = time.monotonic()
        with self._lock:
            failures = self._recent(address, now)
            if len(failures) < settings.API_AUTH_FAILURE_LIMIT:
                if not failures:
                    self._failures.pop(address, None)
                return 0.0
            return failures[0] + settings.API_AUTH_FAILURE_WINDOW_SECONDS - now

    def record(self, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > 100_000:  # many addresses: forget the oldest picture rather than grow
                self._failures.clear()
            self._recent(address, now).append(now)

    def reset(self) -> None:
        with self._lock:
            self._failures.clear()


failed_attempts = FailedAttempts()


def client_address(request: Request) -> str:
    return str(request.META.get("REMOTE_ADDR") or "unknown")


class NotAuthenticated(exceptions.NotAuthenticated):
    default_detail = (
        "this API needs a key: send `Authorization: Bearer <key>` (clients read ORCHESTRATOR_API_KEY; "
        "`orchestrator api-key create NAME` makes one)"
    )


class ApiKeyAuthentication(BaseAuthentication):
    """Bearer keys, in-process calls, and ORCHESTRATOR_API_AUTH=off."""

    def authenticate(self, request: Request) -> tuple[Principal, Any] | None:
        if request._request.META.get(IDENTITY_KEY):
            return LOCAL_ADMIN, None
        if not settings.API_AUTH:
            return ANYONE, None
        header = request._request.META.get("HTTP_AUTHORIZATION")
        if header is None:
            return None  # perhaps a session; else NotAuthenticated (401)
        address = client_address(request)
        wait = failed_attempts.blocked_for(address)
        if wait > 0:
            raise exceptions.Throttled(wait=wait, detail="too many failed API key attempts from this address")
        try:
            return self._check(header)
        except exceptions.AuthenticationFailed:
            failed_attempts.record(address)
            raise

    def _check(self, header: str) -> tuple[Principal, Any]:
        key = bearer_key(header)
        checked = key_check(key) if key is not None else KeyCheck(refused=MALFORMED_HEADER)
        if checked.principal is None:
            raise exceptions.AuthenticationFailed(checked.refused)
        return checked.principal, checked.record

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="orchestrator"'


class ApiSessionAuthentication(SessionAuthentication):
    """A logged-in user of the pages; DRF enforces the CSRF token on their writes."""


def request_scope(request: Request) -> str | None:
    user = request.user
    if isinstance(user, Principal):
        return user.scope
    return scope_of_user(user)


def scope_needed(request: Request, view: Any) -> str:
    needed = getattr(view, "required_scope", None)
    if needed:
        return str(needed)
    return Scope.READ if request.method in SAFE_METHODS else Scope.WRITE


class ScopePermission(BasePermission):
    """The caller's scope covers what the request needs."""

    def has_permission(self, request: Request, view: Any) -> bool:
        needed = scope_needed(request, view)
        user = request.user
        if user is None or not getattr(user, "is_authenticated", False):
            raise NotAuthenticated()
        scope = request_scope(request)
        if scope is not None and SCOPE_RANK[scope] >= SCOPE_RANK[needed]:
            if isinstance(request.auth, _CachedKey):
                key_use_note(request.auth)
            return True
        who = str(user) if isinstance(user, Principal) else f"user {user.get_username()!r}"
        has = f"scope {scope}" if scope else "no role (add them to the Viewer, Operator or Admin group)"
        raise exceptions.PermissionDenied(f"{who} has {has}; {request.method} {request.path} needs {needed}")

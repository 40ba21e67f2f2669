"""API key writes: create (the key is returned once, only its hash is stored), revoke, and the local admin key."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.keys import key_generate, key_hash, key_visible_prefix
from apps.accounts.models import ApiKey, Scope
from apps.core.errors import Conflict, InvalidInput, NotFound

MAX_EXPIRY_DAYS = 3650


def api_key_create(
    *,
    name: str,
    scope: str = Scope.WRITE,
    expires_in_days: int | None = None,
    owner: AbstractBaseUser | None = None,
    key: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key named `name` and its secret (shown to the caller once); Conflict if an active key has the name.
    `key` registers a secret made elsewhere (the local admin key kept in a profile) instead of a new one."""
    name = name.strip()
    if not name:
        raise InvalidInput("a key needs a name", field="name")
    if scope not in Scope.values:
        raise InvalidInput(f"{scope!r} is not a scope; use one of {', '.join(Scope.values)}", field="scope")
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        raise InvalidInput(f"must be between 1 and {MAX_EXPIRY_DAYS} days", field="expires_in_days")
    secret = key or key_generate()
    expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
    try:
        with transaction.atomic():
            api_key = ApiKey.objects.create(
                name=name,
                prefix=key_visible_prefix(secret),
                key_hash=key_hash(secret),
                scope=scope,
                owner=owner if owner is not None and owner.pk else None,
                expires_at=expires_at,
            )
    except IntegrityError:
        if ApiKey.objects.filter(key_hash=key_hash(secret)).exists():
            raise Conflict("this key is registered already") from None
        raise Conflict(
            f"an active key is named {name!r} already; revoke it first (`orchestrator api-key revoke {name}`)",
            field="name",
        ) from None
    return api_key, secret


def api_key_revoke(*, name: str) -> ApiKey:
    """Revoke the active key named `name`: it stops working at once in this process, within
    `KEY_CACHE_SECONDS` in the server's other processes."""
    from apps.accounts.authentication import forget_cached_keys

    with transaction.atomic():
        api_key = ApiKey.objects.select_for_update().filter(name=name, revoked_at__isnull=True).first()
        if api_key is None:
            raise NotFound(f"no active API key named {name!r}; `orchestrator api-key ls` lists them")
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at", "updated"])
    forget_cached_keys()
    return api_key


LOCAL_ADMIN_KEY_NAME = "local-admin"


def local_admin_key_ensure(*, key: str | None) -> tuple[str, str] | None:
    """Make sure the machine's own admin key works on this database.

    `key` is the one the home's profile holds (None: it holds none). With no key, a new admin key is created and
    returned as (what happened, the key), for the caller to store; with a key this database has never seen (a
    new or reset database), it is registered again. A key the database knows (even revoked) is left alone:
    None."""
    if key is not None and ApiKey.objects.filter(key_hash=key_hash(key)).exists():
        return None
    name = LOCAL_ADMIN_KEY_NAME
    taken = set(ApiKey.objects.filter(name__startswith=name, revoked_at__isnull=True).values_list("name", flat=True))
    number = 2
    while name in taken:
        name, number = f"{LOCAL_ADMIN_KEY_NAME}-{number}", number + 1
    api_key, secret = api_key_create(name=name, scope=Scope.ADMIN, key=key)
    return ("registered" if key else "created"), secret

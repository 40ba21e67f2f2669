"""Who may do what on the pages and through a session: three groups, each a role with an API scope.

- Viewer: sees everything (the live pages, the admin read-only); the API's `read` scope.
- Operator: also runs deployments, cancels, retries and resumes runs; the `write` scope.
- Admin: also changes configuration in the admin (users, keys, pools, limits, schedules); the `admin` scope.

A superuser is an Admin. A staff user in no group is a Viewer (the admin's own permissions still decide what
they may change there). Anyone else has no role: the pages refuse them.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group, Permission

from apps.accounts.models import Scope

VIEWER = "Viewer"
OPERATOR = "Operator"
ADMIN = "Admin"
ROLES = [VIEWER, OPERATOR, ADMIN]
ROLE_SCOPE = {VIEWER: Scope.READ, OPERATOR: Scope.WRITE, ADMIN: Scope.ADMIN}


def role_of(user: AbstractBaseUser | AnonymousUser | None) -> str | None:
    """The user's highest role, or None."""
    if user is None or not user.is_authenticated or not getattr(user, "is_active", False):
        return None
    if getattr(user, "is_superuser", False):
        return ADMIN
    cached = getattr(user, "_orchestrator_role", False)
    if cached is not False:
        return cached
    names = set(user.groups.values_list("name", flat=True))  # type: ignore[union-attr]
    role = next((name for name in reversed(ROLES) if name in names), None)
    if role is None and getattr(user, "is_staff", False):
        role = VIEWER
    user._orchestrator_role = role  # type: ignore[union-attr]
    return role


def role_allows(user: Any, needed: str) -> bool:
    """Whether the user's role is `needed` or above it."""
    role = role_of(user)
    return role is not None and ROLES.index(role) >= ROLES.index(needed)


def scope_of_user(user: Any) -> str | None:
    role = role_of(user)
    return ROLE_SCOPE[role] if role else None


def roles_sync(sender: Any = None, **kwargs: Any) -> None:
    """Create the three groups and give them their permissions (after migrate; idempotent).

    Viewers and Operators may view every model in the admin; Admins may add, change and delete them too.
    Runs once per migrate, after the last application's permissions exist."""
    from django.apps import apps

    # post_migrate comes once per application with models, in order: the last one comes after every permission.
    last = [config for config in apps.get_app_configs() if config.models_module is not None][-1]
    if sender is not None and sender is not last:
        return
    using = kwargs.get("using", "default")
    everything = Permission.objects.using(using).all()
    viewing = [permission for permission in everything if permission.codename.startswith("view_")]
    for name, permissions in ((VIEWER, viewing), (OPERATOR, viewing), (ADMIN, list(everything))):
        group, _ = Group.objects.using(using).get_or_create(name=name)
        group.permissions.set(permissions)

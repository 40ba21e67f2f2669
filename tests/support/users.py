"""Users of the pages in each role (apps/accounts/roles.py), for the page, admin and websocket tests."""

from __future__ import annotations

from django.contrib.auth.models import Group, User


def user_with_role(username: str, role: str | None, *, password: str | None = None, **fields: object) -> User:
    """A user in the group `role` (None: in no group). Without a password unless given: hashing one costs a second
    per test."""
    user = User(username=username, **fields)
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    user.save()
    if role is not None:
        user.groups.add(Group.objects.get(name=role))  # made by roles_sync after migrate
    return user

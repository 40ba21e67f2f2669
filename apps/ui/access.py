"""Who may see and do what on the live pages: the one place that decides it (roles in apps/accounts/roles.py).

Every page needs the Viewer role or above; the actions (run a deployment, pause or resume it, cancel, retry or
resume a flow run) need Operator or above. Anonymous visitors are sent to the login page with `next`; a logged-in
user whose role is too small gets a 403 page that says which role to ask an admin for, and nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse

from apps.accounts.roles import OPERATOR, ROLES, VIEWER, role_allows, role_of
from apps.ui.page import render_page

View = Callable[..., HttpResponse]


def role_required(needed: str) -> Callable[[View], View]:
    """A view decorator: the request's user has the role `needed` or above."""

    def decorator(view: View) -> View:
        @wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not role_allows(request.user, needed):
                return forbidden(request, needed)
            return view(request, *args, **kwargs)

        return guarded

    return decorator


viewer_required = role_required(VIEWER)
operator_required = role_required(OPERATOR)


def can_operate(request: HttpRequest) -> bool:
    """Whether the page shows the action buttons and forms."""
    return role_allows(request.user, OPERATOR)


def forbidden(request: HttpRequest, needed: str) -> HttpResponse:
    """The 403 page: what the user lacks and which groups an admin can add them to."""
    role = role_of(request.user)
    if role is None:
        reason = f"Your account {request.user.get_username()} has no role on these pages."
    else:
        reason = f"This needs the {needed} role or above; your account {request.user.get_username()} is a {role}."
    groups = ROLES[ROLES.index(needed) :] if role is not None else ROLES
    wanted = ", ".join(groups[:-1]) + f" or {groups[-1]}" if len(groups) > 1 else groups[0]
    response = render_page(
        request,
        "ui/forbidden.html",
        title="Permission needed",
        section="",
        context={"reason": reason, "groups": wanted, "role": role},
    )
    response.status_code = 403
    return response

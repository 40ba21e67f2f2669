"""Logging in and out of the live pages (/ui/login/, /ui/logout/), in the admin's look, for users of every role:
the admin's own login form is for the admin's users only. Django's LoginView and LogoutView, CSRF-checked."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from apps.accounts.roles import role_of
from apps.ui.page import header_context


class LoginView(auth_views.LoginView):
    """A user who already has a role goes on to `next` at once; one without a role sees the form with the admin's
    note ("authenticated as ..., but not authorized") and may log in as someone else."""

    template_name = "admin/login.html"
    next_page = "ui:dashboard"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "GET" and role_of(request.user) is not None:
            return HttpResponseRedirect(self.get_success_url())
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {
            **super().get_context_data(**kwargs),
            **header_context(self.request),
            "title": "Log in",
            "app_path": self.request.get_full_path(),
            "username": self.request.user.get_username(),
        }


class LogoutView(auth_views.LogoutView):
    next_page = "ui:login"

"""The admin for every role: a user with a role (Viewer, Operator or Admin) may log in, and what they see and change
there is what their group's model permissions allow (roles_sync: Viewer and Operator view only, Admin everything).
Django's own site admits staff only, and its login form refuses everyone else."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from apps.accounts.roles import role_of

NO_ROLE = "This account has no role yet: ask an admin to add it to the Viewer, Operator or Admin group."


class RoleAuthenticationForm(AuthenticationForm):
    """Django's login form, for active users with a role (no is_staff needed)."""

    error_messages = {**AuthenticationForm.error_messages, "no_role": NO_ROLE}

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if role_of(user) is None:
            raise ValidationError(self.error_messages["no_role"], code="no_role")


class OrchestratorAdminSite(admin.AdminSite):
    login_form = RoleAuthenticationForm

    def has_permission(self, request: HttpRequest) -> bool:
        return role_of(request.user) is not None

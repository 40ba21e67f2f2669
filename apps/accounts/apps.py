from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"
    verbose_name = "Users and API keys"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from apps.accounts.roles import roles_sync

        # Groups need the permissions rows, which Django writes in its own post_migrate handler: run after it.
        post_migrate.connect(roles_sync, dispatch_uid="apps.accounts.roles_sync")


class AdminSiteConfig(admin_apps.AdminConfig):
    """django.contrib.admin with the site that admits every role (INSTALLED_APPS names this class)."""

    default = False  # not the accounts app's own config: INSTALLED_APPS names it
    default_site = "apps.accounts.admin_site.OrchestratorAdminSite"

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"
    verbose_name = "Users and API keys"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from apps.accounts.roles import roles_sync

        # Groups need the permissions rows, which Django writes in its own post_migrate handler: run after it.
        post_migrate.connect(roles_sync, dispatch_uid="apps.accounts.roles_sync")

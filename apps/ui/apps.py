from django.apps import AppConfig


class UiConfig(AppConfig):
    name = "apps.ui"
    label = "ui"
    verbose_name = "Live pages"

    def ready(self) -> None:
        from django.contrib import admin

        # The admin's "View site" link leads to the live pages; they link back to the admin ("Configuration").
        admin.site.site_url = "/ui/"
        # The product's name in the header and the tab titles of the admin and the live pages alike.
        admin.site.site_header = "Orchestrator"
        admin.site.site_title = "Orchestrator"

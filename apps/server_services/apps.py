from django.apps import AppConfig


class ServerServicesConfig(AppConfig):
    name = "apps.server_services"
    # The label the app had as apps.services: its tables (services_*), migrations and content types keep their names.
    label = "services"
    verbose_name = "Server services"

    def ready(self) -> None:
        # The Celery app becomes the current one in every Django process, so the admin's "Run selected tasks"
        # on a periodic task sends it through our broker, and lists our task among the registered ones.
        import orchestrator.celery  # noqa: F401

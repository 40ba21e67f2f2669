from django.apps import AppConfig


class ServicesConfig(AppConfig):
    name = "apps.services"
    label = "services"
    verbose_name = "Server services"

    def ready(self) -> None:
        # The Celery app becomes the current one in every Django process, so the admin's "Run selected tasks"
        # on a periodic task sends it through our broker, and lists our task among the registered ones.
        import orchestrator.celery  # noqa: F401

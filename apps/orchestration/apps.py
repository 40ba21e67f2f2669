from django.apps import AppConfig


class OrchestrationConfig(AppConfig):
    name = "apps.orchestration"
    label = "orchestration"
    verbose_name = "Orchestration"

    def ready(self) -> None:
        from apps.orchestration import checks  # noqa: F401  (registers the policy check)

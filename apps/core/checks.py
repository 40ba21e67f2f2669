"""System checks: a malformed setting is reported at start-up as one line naming it."""

from django.conf import settings
from django.core.checks import Error, register


@register()
def orchestrator_settings_check(app_configs, **kwargs) -> list[Error]:
    return [Error(problem, id="orchestrator.E001") for problem in settings.CONFIG_PROBLEMS]

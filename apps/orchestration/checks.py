"""System check: every policy entry and state-stored hook named by dotted path resolves (a typo in
apps/orchestration/policies.py is reported at start-up, not at a run's first transition)."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, register
from django.utils.module_loading import import_string

from apps.orchestration.policies import POLICIES, STATE_STORED_HOOKS, resolve_policy


@register()
def orchestration_policies_check(app_configs: Any, **kwargs: Any) -> list[Error]:
    errors = []
    for kind, policy in POLICIES.items():
        try:
            resolve_policy(policy)
        except (ImportError, TypeError) as exc:
            errors.append(Error(f"the {kind} policy does not resolve: {exc}", id="orchestration.E001"))
    for path in STATE_STORED_HOOKS:
        try:
            if not callable(import_string(path)):
                raise TypeError(f"{path} is not callable")
        except (ImportError, TypeError) as exc:
            errors.append(Error(f"state-stored hook {path!r} does not resolve: {exc}", id="orchestration.E002"))
    return errors

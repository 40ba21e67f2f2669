"""What a notification says: the placeholders a policy's template may use, checking a template, rendering it, and
which state keys (types and names) a state change matches. Plain Python, no database."""

from __future__ import annotations

import string
from typing import Any

from orchestrator.states import NAMED_STATES, StateType

PLACEHOLDERS: dict[str, str] = {
    "flow_run_name": "the run's name",
    "flow_run_id": "the run's id",
    "flow_run_url": "the run's page, under ORCHESTRATOR_UI_URL",
    "flow_name": "the run's flow",
    "deployment_name": "the run's deployment (empty for a run without one)",
    "work_pool_name": "the run's work pool (empty for none)",
    "tags": "the run's tags, comma-separated",
    "state_type": "the new state's type, e.g. FAILED",
    "state_name": "the new state's name, e.g. Failed, Late",
    "state_message": "the new state's message",
    "state_time": "when the run entered the state (ISO 8601, UTC)",
    "policy_name": "the policy's name",
}
# A policy's state_types: any state type, or any state name upper-cased (LATE, AWAITINGRETRY, TIMEDOUT, ...).
STATE_KEYS = frozenset({state_type.value for state_type in StateType} | {name.upper() for name in NAMED_STATES})


def template_problem(template: str) -> str | None:
    """Why the template cannot be rendered (an unknown placeholder, a lone brace), or None."""
    try:
        fields = [field for _, field, spec, conversion in string.Formatter().parse(template) if field is not None]
    except ValueError as exc:
        return f"{exc} (write {{{{ and }}}} for literal braces)"
    for field in fields:
        if field not in PLACEHOLDERS:
            known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
            shown = "{" + field + "}" if field else "{}"
            return f"unknown placeholder {shown}; the placeholders are {known}"
    return None


def message_render(template: str, context: dict[str, Any]) -> str:
    """The template with the context's values (a placeholder the context lacks renders empty)."""
    values = {name: "" if context.get(name) is None else context.get(name) for name in PLACEHOLDERS}
    return template.format_map(values)


def state_keys(state_type: str | None, state_name: str | None) -> frozenset[str]:
    """The keys a policy's state_types are compared with: the type and the name upper-cased."""
    keys = {key for key in (state_type, (state_name or "").upper()) if key}
    return frozenset(keys)

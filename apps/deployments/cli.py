"""What `orchestrator deploy` and `orchestrator deployment ...` share besides the client (orchestrator/client/),
which answers them from the server when ORCHESTRATOR_API_URL is set, else in-process."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """`--param k=v` values: v is read as JSON when it is JSON (numbers, true, lists), else as text."""
    parameters: dict[str, Any] = {}
    for pair in pairs:
        key, separator, raw = pair.partition("=")
        if not separator or not key.strip():
            raise CommandError(f"--param {pair!r} is not KEY=VALUE")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        parameters[key.strip()] = value
    return parameters

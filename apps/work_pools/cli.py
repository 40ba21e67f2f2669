"""What `orchestrator work-pool ...` and `orchestrator work-queue ...` share besides the client
(orchestrator/client/): how limits and flags print."""

from __future__ import annotations


def limit_text(value: int | None) -> str:
    return "-" if value is None else str(value)


def yes_no(value: bool) -> str:
    return "yes" if value else "no"

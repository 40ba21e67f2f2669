"""Writes for flows."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from apps.core.errors import Conflict
from apps.flows.models import Flow


def flow_get_or_create(*, name: str, tags: list[str] | None = None) -> tuple[Flow, bool]:
    """Return the flow with this name, creating it if needed (safe when two clients race)."""
    flow = Flow.objects.filter(name=name).first()
    if flow is not None:
        return flow, False
    try:
        with transaction.atomic():
            return Flow.objects.create(name=name, tags=tags or []), True
    except IntegrityError:
        return Flow.objects.get(name=name), False


def flow_update(*, flow: Flow, name: str | None = None, tags: list[str] | None = None) -> Flow:
    """Rename or retag a flow; a name another flow holds is a Conflict (also when two renames race)."""
    conflict = Conflict(f"a flow named {name!r} already exists", field="name")
    if name is not None and name != flow.name:
        if Flow.objects.filter(name=name).exclude(pk=flow.pk).exists():
            raise conflict
        flow.name = name
    if tags is not None:
        flow.tags = tags
    try:
        with transaction.atomic():
            flow.save()
    except IntegrityError as exc:
        raise conflict from exc
    return flow

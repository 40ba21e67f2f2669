"""Filters for the overview pages: ages in short words, schedules in words, capped counts."""

from __future__ import annotations

from typing import Any

from django import template

from apps.ui.overview import COUNT_CAP
from apps.ui.schedule_words import describe_schedule

register = template.Library()


@register.filter
def age(seconds: float | None) -> str:
    """`12 s`, `3 min`, `2 h`, `4 d`."""
    if seconds is None:
        return ""
    seconds = max(0.0, float(seconds))
    if seconds < 120:
        return f"{int(seconds)} s"
    if seconds < 7200:
        return f"{int(seconds // 60)} min"
    if seconds < 172800:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"


@register.filter
def schedule_words(schedule: dict[str, Any]) -> str:
    return describe_schedule(schedule or {})


@register.filter
def capped(count: int) -> str:
    """A count from `overview.capped_count`: past the cap it reads "1000+"."""
    return f"{COUNT_CAP}+" if count > COUNT_CAP else str(count)

"""Time helpers: every time the server stores or returns is timezone-aware UTC."""

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def seconds_between(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()

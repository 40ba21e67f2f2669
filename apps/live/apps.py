from typing import Any

from django.apps import AppConfig
from django.conf import settings


def _publish(events: list[Any]) -> int:
    # Imported on first use: a process that never runs the event runner (the CLI, the SDK) skips the serializers.
    from apps.live.publish import live_events_publish

    return live_events_publish(events)


class LiveConfig(AppConfig):
    """Websockets for the live pages: consumers (apps/live/consumers.py) and the publisher that feeds them from the
    event stream (apps/live/publish.py); docs/live.md."""

    name = "apps.live"
    label = "live"
    verbose_name = "Live updates"

    def ready(self) -> None:
        from apps.events.consumers import consumer_register
        from apps.live.layer import PUBLISHER_NAME

        # Embedded (in-memory layer): every server process publishes every event to its own connections, from a
        # per-process consumer. With Redis, exactly one process must publish each event: a durable consumer, whose
        # cursor lock hands each batch to one process. Either way the publisher starts at the stream's tail.
        consumer_register(
            name=PUBLISHER_NAME, handler=_publish, durable=settings.LIVE_REDIS_URL is not None, start_at_tail=True
        )

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Notification policies and their deliveries (docs/notifications.md)."""

    name = "apps.notifications"
    label = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from apps.events.consumers import consumer_register
        from apps.notifications.consumer import NOTIFICATIONS_CONSUMER, deliveries_enqueue, may_notify

        # Durable: every matching state change gets its deliveries once, whichever process reads it.
        consumer_register(name=NOTIFICATIONS_CONSUMER, handler=deliveries_enqueue, wants=may_notify)

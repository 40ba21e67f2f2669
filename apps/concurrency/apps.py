from django.apps import AppConfig


class ConcurrencyConfig(AppConfig):
    name = "apps.concurrency"
    label = "concurrency"
    verbose_name = "Concurrency limits"

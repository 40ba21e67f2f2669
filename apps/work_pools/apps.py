from django.apps import AppConfig


class WorkPoolsConfig(AppConfig):
    name = "apps.work_pools"
    label = "work_pools"
    verbose_name = "Work pools"

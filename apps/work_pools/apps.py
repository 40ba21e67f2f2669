from django.apps import AppConfig


class WorkPoolsConfig(AppConfig):
    name = "apps.work_pools"
    label = "work_pools"
    verbose_name = "Work pools"

    def ready(self) -> None:
        from apps.events.consumers import consumer_register
        from apps.work_pools.dispatch import flow_runs_dispatch_scheduled, made_a_flow_run_scheduled

        # A celery pool's run is sent to its Celery queue once the change that made it Scheduled has committed.
        consumer_register(name="celery_dispatch", handler=flow_runs_dispatch_scheduled, wants=made_a_flow_run_scheduled)

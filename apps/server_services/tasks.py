"""The Celery task Beat sends for every service: thin, by name, and as idempotent as the service it runs."""

from celery import shared_task

from apps.server_services.services import TASK_NAME, service_run


@shared_task(name=TASK_NAME, ignore_result=True)
def run_service(name: str) -> None:
    """Run the service `name` once; its outcome is recorded as a ServiceRun."""
    service_run(name=name)

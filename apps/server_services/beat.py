"""Celery Beat's scheduler: django-celery-beat's DatabaseScheduler, which first syncs the service registry."""

from __future__ import annotations

from django_celery_beat.schedulers import DatabaseScheduler

from apps.server_services.services import service_schedules_sync


class ServiceScheduler(DatabaseScheduler):
    """Every Beat (embedded or `celery -A orchestrator.celery beat`) starts with an entry for each service."""

    def setup_schedule(self) -> None:
        service_schedules_sync()
        super().setup_schedule()

"""The app moved from apps/services to apps/server_services; what existing databases store must not change."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection
from django_celery_beat.models import PeriodicTask

from apps.server_services.models import ServiceRun, ServiceSchedule
from apps.server_services.services import TASK_NAME, service_schedules_sync
from orchestrator.celery import app as celery_app


def test_the_app_keeps_its_label_so_tables_and_migrations_are_those_of_existing_databases() -> None:
    """A database created before the rename has services_* tables and migration rows under the label `services`."""
    config = apps.get_app_config("services")

    assert config.name == "apps.server_services"
    assert (ServiceRun._meta.db_table, ServiceSchedule._meta.db_table) == (
        "services_servicerun",
        "services_serviceschedule",
    )


@pytest.mark.django_db
def test_the_migrations_are_recorded_under_the_old_label() -> None:
    """Django looks up applied migrations by label: a new label would re-apply 0001 on an existing database."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM django_migrations WHERE app = %s", ["services"])
        assert ("0001_initial",) in cursor.fetchall()


@pytest.mark.django_db
def test_beat_entries_name_the_task_by_its_stable_name_and_the_worker_knows_it() -> None:
    """PeriodicTask rows store the task's name; the renamed module must still register the same name."""
    service_schedules_sync()

    assert set(PeriodicTask.objects.filter(name__startswith="service: ").values_list("task", flat=True)) == {
        "orchestrator.services.run"
    }
    assert TASK_NAME == "orchestrator.services.run"
    celery_app.loader.import_default_modules()
    assert celery_app.tasks[TASK_NAME].__module__ == "apps.server_services.tasks"


def test_celery_settings_name_the_moved_modules() -> None:
    """The scheduler and the embedded broker are found by dotted path: a stale path fails only at start-up."""
    assert settings.CELERY_BEAT_SCHEDULER == "apps.server_services.beat:ServiceScheduler"
    if settings.SERVICES_EMBEDDED_BROKER:
        assert settings.CELERY_BROKER_TRANSPORT == "apps.server_services.broker:Transport"

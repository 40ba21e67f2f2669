"""Syncing the service registry into Celery Beat's tables (django-celery-beat), and what an admin changes there."""

from __future__ import annotations

import json

import pytest
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from apps.server_services.models import ServiceSchedule
from apps.server_services.registry import services_all
from apps.server_services.services import TASK_NAME, interval_seconds, periodic_task_name, service_schedules_sync

pytestmark = pytest.mark.django_db


def entry(name: str) -> PeriodicTask:
    return PeriodicTask.objects.select_related("interval").get(name=periodic_task_name(name))


def actions() -> dict[str, str]:
    return {outcome.service: outcome.action for outcome in service_schedules_sync()}


def test_sync_gives_every_registered_service_an_entry_with_its_default_interval() -> None:
    """Beat runs only what is in its tables: a service without an entry would silently never run."""
    assert actions() == {service.name: "created" for service in services_all()}
    expected = {
        "scheduler": 10,
        "late_runs": 5,
        "zombies": 10,
        "cancellation_cleanup": 10,
        "celery_dispatch": 10,
        "pause_timeouts": 10,
        "notifications": 10,
        "concurrency_leases": 10,
        "retention": 3600,
    }
    for service in services_all():
        task = entry(service.name)
        assert (task.task, json.loads(task.args), task.enabled) == (TASK_NAME, [service.name], True)
        assert interval_seconds(task) == expected[service.name]
        assert task.description == service.description


def test_sync_twice_changes_nothing() -> None:
    """Every server start and every Beat syncs: repeating it must not duplicate or touch entries."""
    service_schedules_sync()
    before = {task.name: (task.interval_id, task.date_changed) for task in PeriodicTask.objects.all()}
    assert set(actions().values()) == {"unchanged"}
    assert {task.name: (task.interval_id, task.date_changed) for task in PeriodicTask.objects.all()} == before
    assert PeriodicTask.objects.count() == len(services_all()) == ServiceSchedule.objects.count()


def test_a_new_default_interval_reaches_entries_the_admin_did_not_change(settings) -> None:
    """Defaults change with releases or settings; entries still on the old default should follow."""
    service_schedules_sync()
    settings.SERVICE_INTERVALS = {"late_runs": 20, "retention": 7200}
    outcome = actions()
    assert (outcome["late_runs"], outcome["retention"]) == ("updated", "updated")
    assert (interval_seconds(entry("late_runs")), interval_seconds(entry("retention"))) == (20, 7200)
    # Queued messages expire after a minute, or one interval when that is longer.
    assert (entry("late_runs").expire_seconds, entry("retention").expire_seconds) == (60, 7200)


def test_an_interval_changed_in_the_admin_is_kept_over_a_new_default(admin_client, settings) -> None:
    """Intervals are editable in the admin (SPEC §10): a restart or a new default must never undo that edit."""
    service_schedules_sync()
    task = entry("late_runs")
    every_minute = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.MINUTES)
    form = {
        "name": task.name,
        "regtask": "",
        "task": task.task,
        "enabled": "on",
        "description": task.description,
        "interval": every_minute.pk,
        "crontab": "",
        "solar": "",
        "clocked": "",
        "start_time_0": "",
        "start_time_1": "",
        "args": task.args,
        "kwargs": task.kwargs,
        "expires_0": "",
        "expires_1": "",
        "expire_seconds": "",
        "queue": "",
        "exchange": "",
        "routing_key": "",
        "priority": "",
        "headers": "{}",
    }
    response = admin_client.post(f"/admin/django_celery_beat/periodictask/{task.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert interval_seconds(entry("late_runs")) == 60

    settings.SERVICE_INTERVALS = {"late_runs": 20}
    assert actions()["late_runs"] == "kept"
    assert interval_seconds(entry("late_runs")) == 60


def test_an_entry_disabled_or_given_a_crontab_in_the_admin_stays_so() -> None:
    """An admin who turns a service off, or runs it on a crontab instead, must not be overruled at start."""
    service_schedules_sync()
    retention = entry("retention")
    retention.enabled = False
    retention.save()
    late_runs = entry("late_runs")
    late_runs.interval = None
    late_runs.crontab = CrontabSchedule.objects.create(minute="*/5")
    late_runs.save()

    outcome = actions()
    assert (outcome["retention"], outcome["late_runs"]) == ("unchanged", "kept")
    assert entry("retention").enabled is False
    assert entry("late_runs").interval is None and entry("late_runs").crontab.minute == "*/5"


def test_an_entry_made_by_hand_before_the_first_sync_is_adopted_not_duplicated() -> None:
    """An operator may have created the entry first (or the bookkeeping row was lost): keep their interval."""
    hourly = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    PeriodicTask.objects.create(name=periodic_task_name("late_runs"), task="something.else", interval=hourly)
    assert actions()["late_runs"] == "kept"
    task = entry("late_runs")
    assert (task.task, json.loads(task.args), interval_seconds(task)) == (TASK_NAME, ["late_runs"], 3600)
    assert PeriodicTask.objects.filter(name=periodic_task_name("late_runs")).count() == 1


def test_entries_of_services_no_longer_registered_are_removed() -> None:
    """A service renamed or removed in code would otherwise be sent by Beat forever and fail as unknown."""
    service_schedules_sync()
    every_second = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    gone = PeriodicTask.objects.create(
        name=periodic_task_name("gone"), task=TASK_NAME, args='["gone"]', interval=every_second
    )
    ServiceSchedule.objects.create(service="gone", periodic_task=gone, interval_seconds=1)
    assert actions()["gone"] == "removed"
    assert not PeriodicTask.objects.filter(name=periodic_task_name("gone")).exists()
    assert not ServiceSchedule.objects.filter(service="gone").exists()

"""The Celery application that runs the server services: `celery -A orchestrator.celery worker|beat`.

Its configuration is the Django settings starting with CELERY_ (the broker comes from ORCHESTRATOR_BROKER_URL,
embedded when unset); Beat uses django-celery-beat's database scheduler, synced from apps/server_services/registry.py.
`orchestrator/__init__.py` does not import this module, so `import orchestrator` stays free of Celery and Django;
`celery -A orchestrator` finds it too (Celery looks for `orchestrator.celery` when the package has no `app`).

`celery -A orchestrator.celery worker --beat-thread` runs Celery Beat as a thread of the worker: one process for
the scheduler and the services. `orchestrator server start` runs the same worker and Beat thread inside its first
Daphne worker (`orchestrator.server.run_services`; docs/services.md).
"""

from __future__ import annotations

import os

import click
from celery import Celery, bootsteps
from celery.worker import WorkController

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

app = Celery("orchestrator")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class BeatThread(bootsteps.StartStopStep):
    """Celery Beat (the configured scheduler: django-celery-beat's, synced from the registry) on a thread of this
    worker. Celery's own `--beat` forks Beat into a second process of the same size, which its supervisor cannot
    see; a thread costs a few MB, and the worker's warm shutdown stops it (Beat then saves its schedule)."""

    label = "BeatThread"
    conditional = True

    def __init__(self, worker: WorkController, beat_thread: bool = False, **kwargs: object) -> None:
        self.enabled = bool(beat_thread)
        super().__init__(worker, **kwargs)

    def create(self, worker: WorkController) -> object:
        from celery.beat import EmbeddedService

        # `worker.scheduler` is --scheduler, else the beat_scheduler setting (apps/server_services/beat.py).
        return EmbeddedService(
            worker.app, thread=True, scheduler_cls=worker.scheduler, schedule_filename=worker.schedule_filename
        )


app.user_options["worker"].add(
    click.Option(
        ["--beat-thread"],
        is_flag=True,
        default=False,
        help="Also run Celery Beat, as a thread of this worker (one process for the scheduler and the services).",
    )
)
app.steps["worker"].add(BeatThread)

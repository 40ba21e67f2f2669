"""The Celery application that runs the server services: `celery -A orchestrator.celery worker|beat`.

Its configuration is the Django settings starting with CELERY_ (the broker comes from ORCHESTRATOR_BROKER_URL,
embedded when unset); Beat uses django-celery-beat's database scheduler, synced from apps/services/registry.py.
`orchestrator/__init__.py` does not import this module, so `import orchestrator` stays free of Celery and Django;
`celery -A orchestrator` finds it too (Celery looks for `orchestrator.celery` when the package has no `app`).
"""

from __future__ import annotations

import os
import signal
import threading
import time

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

app = Celery("orchestrator")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# `orchestrator server start` runs Beat and a worker as its children and names itself here (process plumbing,
# not a setting): a child whose supervisor vanished without stopping it (SIGKILL) stops itself. The watch starts
# when this module is imported, early in `celery -A orchestrator.celery ...`, so even a child still starting
# notices.
SUPERVISOR_PID_VARIABLE = "ORCHESTRATOR_SUPERVISOR_PID"
PARENT_CHECK_SECONDS = 0.5


def _stop_when_orphaned(supervisor_pid: int) -> None:
    while os.getppid() == supervisor_pid:
        time.sleep(PARENT_CHECK_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)  # the same clean stop the supervisor would have asked for


def _watch_supervisor() -> None:
    supervisor_pid = os.environ.get(SUPERVISOR_PID_VARIABLE, "")
    if supervisor_pid.isdigit():
        threading.Thread(
            target=_stop_when_orphaned, args=(int(supervisor_pid),), name="supervisor-watch", daemon=True
        ).start()


_watch_supervisor()

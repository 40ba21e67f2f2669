"""Settings for the processes the celery pool tests start (the server and its services, `orchestrator worker
start` on a celery pool).

Selected with DJANGO_SETTINGS_MODULE=tests.workers.celery_settings (and PYTHONPATH=the repository). Every key
the processes of one test module write to the shared Redis starts with CELERY_POOL_TEST_PREFIX, so test runs in
parallel (and other suites on the same Redis) never take each other's messages; celery_dispatch runs every second.
"""

import os

from orchestrator.settings import *  # noqa: F403
from orchestrator.settings import CELERY_BROKER_TRANSPORT_OPTIONS, SERVICE_INTERVALS, SERVICES_EMBEDDED_BROKER

if not SERVICES_EMBEDDED_BROKER:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        **CELERY_BROKER_TRANSPORT_OPTIONS,
        "global_keyprefix": os.environ.get("CELERY_POOL_TEST_PREFIX", "orchestrator-test:"),
    }
SERVICE_INTERVALS = {**SERVICE_INTERVALS, "celery_dispatch": 1}

"""Settings for the processes the services tests start (Celery worker and Beat, `orchestrator server start`).

Selected with DJANGO_SETTINGS_MODULE=tests.server_services.settings (and PYTHONPATH=the repository). late_runs and
pause_timeouts run every second, so a test sees them work within seconds; SERVICES_TEST_QUEUE gives each test
its own queue on a broker server that other test runs share.
"""

import os

from orchestrator.settings import *  # noqa: F403

SERVICE_INTERVALS = {"scheduler": 3600, "late_runs": 1, "pause_timeouts": 1, "retention": 3600}
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("SERVICES_TEST_QUEUE", "orchestrator")

"""Settings of the Redis fault test's server and Celery worker: those of the celery pool tests (celery_dispatch every
second, a key prefix), and a lost message is sent again 2 s after its run's time instead of 30."""

from tests.workers.celery_settings import *  # noqa: F403

ORCHESTRATOR_CELERY_REDISPATCH_SECONDS = 2.0

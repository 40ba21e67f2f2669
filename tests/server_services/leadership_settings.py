"""Settings for the servers of tests/server_services/test_leadership_servers.py: the scheduler every 2 seconds, the
other services rarely (their passes would only add noise), and a 4-hour schedule horizon's worth of runs."""

from orchestrator.settings import *  # noqa: F403

SCHEDULER_INTERVAL_SECONDS = 2
SERVICE_INTERVALS = {
    "scheduler": SCHEDULER_INTERVAL_SECONDS,
    "late_runs": 3600,
    "zombies": 3600,
    "cancellation_cleanup": 3600,
    "celery_dispatch": 3600,
    "pause_timeouts": 3600,
    "retention": 3600,
}
# Every pass's record is kept: the test and benchmarks/leadership.py read the whole history of passes.
SERVICE_RUN_HISTORY = 100_000

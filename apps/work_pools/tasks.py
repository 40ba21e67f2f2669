"""The Celery task of the celery pool type: thin and idempotent (docs/workers.md, "Celery pools").

`orchestrator.work_pools.execute_flow_run(flow_run_id)` arrives on a pool's queue (`pool-<name>`) when the run
is due; its body (orchestrator/workers/celery_pool.py) claims the run through the engine and runs it. A second
delivery of the same run finds it claimed and returns. The signal handlers make a Celery worker that consumes
pool queues warm up its processes and announce itself; other Celery workers (the server's services worker) are
left as they are.
"""

from __future__ import annotations

import socket

from celery import shared_task
from celery.signals import worker_process_init, worker_ready

from apps.work_pools.dispatch import EXECUTE_TASK_NAME, QUEUE_PREFIX


@shared_task(name=EXECUTE_TASK_NAME, bind=True, ignore_result=True, max_retries=None)
def execute_flow_run(self, flow_run_id: str) -> str:
    """Claim and run the flow run (nothing if it is not Scheduled any more); sent again later when a concurrency
    limit makes the claim wait or the run is not due yet."""
    from orchestrator.workers.celery_pool import execute_flow_run as execute

    worker_name = self.request.hostname or f"celery@{socket.gethostname()}"
    outcome = execute(flow_run_id=str(flow_run_id), worker_name=worker_name)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.message


def _consumed_pools(app) -> list[str]:
    """The work pools whose queues this Celery worker consumes."""
    names = app.amqp.queues.consume_from or {}
    return [name[len(QUEUE_PREFIX) :] for name in names if name.startswith(QUEUE_PREFIX)]


@worker_process_init.connect
def _warm_up_pool_process(**kwargs) -> None:
    from celery import current_app

    if _consumed_pools(current_app):
        from orchestrator.workers.celery_pool import warm_up

        warm_up()


@worker_ready.connect
def _announce_pool_worker(sender=None, **kwargs) -> None:
    if sender is None or not _consumed_pools(sender.app):
        return
    from orchestrator.workers.celery_pool import announce_ready

    announce_ready(hostname=sender.hostname, pools=_consumed_pools(sender.app))

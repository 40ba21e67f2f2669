"""Real Celery workers and Beat on each broker the product supports: the embedded one, Redis and RabbitMQ.

Each test starts `celery -A orchestrator.celery worker` and `beat` as separate processes on the test database
(transactional_db: they see and write committed rows) and waits for the services they run to be recorded.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Queue

from apps.server_services.models import ServiceRun
from apps.server_services.services import TASK_NAME
from orchestrator.celery import app
from tests.server_services.helpers import celery_processes, services_env, wait_for

REDIS_URL = "redis://127.0.0.1:6379/13"  # a database number no other part of the suite uses
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"


def beat_ran_pause_timeouts() -> bool:
    return ServiceRun.objects.filter(service="pause_timeouts", trigger=ServiceRun.Trigger.CELERY).exists()


def test_embedded_broker_carries_beat_and_other_processes_messages_to_the_worker_exactly_once(
    transactional_db, services_home: Path
) -> None:
    """With no broker server, Beat, the worker and any other process must still meet in the same message files."""
    env = services_env(services_home)
    with celery_processes(services_home, env=env) as processes:
        wait_for(beat_ran_pause_timeouts, what=f"Beat's pause_timeouts run:\n{processes.output()}")

        # Another process (this test) sends five runs of retention through the same folder.
        with app.connection_for_write(transport_options={"folder": str(services_home / "broker")}) as broker:
            for _ in range(5):
                app.send_task(TASK_NAME, args=["retention"], connection=broker, queue=env["SERVICES_TEST_QUEUE"])
        wait_for(
            lambda: ServiceRun.objects.filter(service="retention").count() >= 5,
            what=f"five retention runs:\n{processes.output()}",
        )
        assert ServiceRun.objects.filter(service="retention").count() == 5
        assert list((services_home / "broker" / "staging").iterdir()) == []
        assert "Traceback" not in processes.output()


def reachable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("broker_url", [REDIS_URL, RABBITMQ_URL], ids=["redis", "rabbitmq"])
def test_worker_and_beat_run_services_through_a_broker_server(
    transactional_db, services_home: Path, broker_url: str
) -> None:
    """Scaled out, Beat and the workers talk through Redis or RabbitMQ; services must run the same way there."""
    port = 6379 if broker_url.startswith("redis") else 5672
    assert reachable(port), f"the broker of {broker_url} is not running on 127.0.0.1:{port} (see SERVICES.md)"
    env = services_env(services_home, ORCHESTRATOR_BROKER_URL=broker_url)
    try:
        # `-A orchestrator` (the package) must find the app as well as `-A orchestrator.celery`.
        with celery_processes(services_home, env=env, app="orchestrator") as processes:
            wait_for(beat_ran_pause_timeouts, what=f"Beat's pause_timeouts run:\n{processes.output()}")
            runs = ServiceRun.objects.filter(service="pause_timeouts", trigger=ServiceRun.Trigger.CELERY)
            assert [(run.error, run.result) for run in runs][:1] == [(None, 0)]
            assert not (services_home / "broker").exists()  # the embedded broker was not used
    finally:
        remove_queue(broker_url, env["SERVICES_TEST_QUEUE"])


def remove_queue(broker_url: str, name: str) -> None:
    """Leave the shared broker as it was: this test's queue and exchange go."""
    with Connection(broker_url) as broker:
        channel = broker.channel()
        Queue(name, Exchange(name), routing_key=name)(channel).delete()
        Exchange(name)(channel).delete()

"""The admin pages of work pools: a pool with its queues and the worker command to copy, workers read-only."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from apps.work_pools.models import WorkPool, WorkQueue
from apps.work_pools.services import work_pool_create, worker_heartbeat

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
    return client


def test_a_pool_page_shows_its_queues_workers_and_the_worker_command(admin_client):
    """Operators copy the worker command from here onto the machine that should run the pool's flows."""
    pool = work_pool_create(name="local")
    worker_heartbeat(pool=pool, name="host-1")

    page = admin_client.get(f"/admin/work_pools/workpool/{pool.id}/change/")

    assert page.status_code == 200
    text = page.content.decode()
    assert "orchestrator worker start --pool local" in text
    assert "default" in text and "host-1" in text and "online" in text
    assert admin_client.get("/admin/work_pools/worker/").status_code == 200
    assert admin_client.get("/admin/work_pools/workpool/").status_code == 200


def test_a_pool_added_in_the_admin_gets_its_default_queue(admin_client):
    form = {
        "name": "from-admin",
        "type": "process",
        "description": "",
        "concurrency_limit": "",
        "queues-TOTAL_FORMS": "0",
        "queues-INITIAL_FORMS": "0",
        "workers-TOTAL_FORMS": "0",
        "workers-INITIAL_FORMS": "0",
    }

    response = admin_client.post("/admin/work_pools/workpool/add/", form)

    assert response.status_code == 302, response.content.decode()[:2000]
    assert list(WorkQueue.objects.filter(pool__name="from-admin").values_list("name", flat=True)) == ["default"]


def test_the_default_queue_cannot_be_deleted_in_the_admin(admin_client):
    """Runs naming no queue belong to it: deleting it from the inline is refused like the API refuses it."""
    pool = work_pool_create(name="local")
    default = pool.queues.get()
    form = {
        "name": "local",
        "type": "process",
        "description": "",
        "concurrency_limit": "",
        "queues-TOTAL_FORMS": "1",
        "queues-INITIAL_FORMS": "1",
        "queues-0-id": str(default.id),
        "queues-0-pool": str(pool.id),
        "queues-0-name": "default",
        "queues-0-priority": "1",
        "queues-0-concurrency_limit": "",
        "queues-0-description": "",
        "queues-0-DELETE": "on",
        "workers-TOTAL_FORMS": "0",
        "workers-INITIAL_FORMS": "0",
    }

    response = admin_client.post(f"/admin/work_pools/workpool/{pool.id}/change/", form)

    assert response.status_code == 200
    assert "the default queue cannot be deleted" in response.content.decode()
    assert WorkPool.objects.get().queues.count() == 1

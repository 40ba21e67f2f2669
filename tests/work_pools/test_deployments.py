"""Deploying to a pool by name: a pool that does not exist yet is created (process type, default queue)."""

from __future__ import annotations

import pytest

from apps.work_pools.models import WorkPool
from apps.work_pools.services import work_pool_create

pytestmark = pytest.mark.django_db


def deploy(api, **fields):
    body = {"flow_name": "etl", "name": "nightly", "entrypoint": "etl.py:etl", **fields}
    response = api.post("/api/deployments/", body, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def test_a_deployment_naming_a_new_pool_creates_it_with_its_default_queue(api):
    """Its runs need a pool a worker can poll; making users create it first is a step they forget."""
    deploy(api, work_pool_name="fresh")

    pool = WorkPool.objects.get(name="fresh")
    assert pool.type == "process"
    assert list(pool.queues.values_list("name", flat=True)) == ["default"]


def test_an_existing_pool_is_left_as_it_is(api):
    """Redeploying must never reset a pool an operator configured (type, limits, pause)."""
    work_pool_create(name="gpu", type="celery", concurrency_limit=1, paused=True)

    deploy(api, work_pool_name="gpu")

    pool = WorkPool.objects.get(name="gpu")
    assert (pool.type, pool.concurrency_limit, pool.paused, WorkPool.objects.count()) == ("celery", 1, True, 1)


def test_moving_a_deployment_to_another_pool_creates_that_pool_and_none_without_a_pool(api):
    deployment = deploy(api)
    assert not WorkPool.objects.exists()

    response = api.patch(f"/api/deployments/{deployment['id']}/", {"work_pool_name": "moved"}, format="json")

    assert response.status_code == 200, response.content
    assert list(WorkPool.objects.values_list("name", flat=True)) == ["moved"]


def test_a_pool_that_active_deployments_use_cannot_be_deleted(api):
    """Deleting it would leave their runs Late forever: a 409 names the deployments and nothing is deleted."""
    deploy(api, work_pool_name="busy")
    deploy(api, name="hourly", work_pool_name="busy")

    response = api.delete("/api/work_pools/busy/")

    assert response.status_code == 409, response.content
    message = response.json()["message"]
    assert "etl/hourly" in message and "etl/nightly" in message and "pause" in message
    assert WorkPool.objects.filter(name="busy").exists()


def test_a_pool_whose_deployments_are_paused_can_be_deleted(api):
    """Paused deployments make no runs: once every deployment using it is paused, the pool may go."""
    deployment = deploy(api, work_pool_name="retired")
    assert api.post(f"/api/deployments/{deployment['id']}/pause/").status_code == 200

    assert api.delete("/api/work_pools/retired/").status_code == 204
    assert not WorkPool.objects.filter(name="retired").exists()


def test_the_admin_refuses_to_delete_a_pool_in_use_and_says_why(admin_client, api):
    """The admin's delete page is refused the same way, with the reason shown on the pool's page."""
    deploy(api, work_pool_name="busy")
    pool = WorkPool.objects.get(name="busy")

    response = admin_client.post(f"/admin/work_pools/workpool/{pool.pk}/delete/", {"post": "yes"}, follow=True)

    assert response.status_code == 200
    assert "etl/nightly" in response.content.decode()
    assert WorkPool.objects.filter(name="busy").exists()

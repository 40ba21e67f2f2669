"""Slots are leases (docs/concurrency.md): in use = the unexpired leases' slots; expiry, renewal, rate decay, the
reaper, runs that end or are deleted, the global-limit API and its refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.concurrency import services
from apps.concurrency.models import ConcurrencyLease, GlobalConcurrencyLimit
from apps.concurrency.selectors import LimitHolders, concurrency_holders, slots_in_use
from apps.core.errors import InvalidInput
from orchestrator.states import Cancelled, Crashed, Running
from tests.concurrency.support import hold, slots_of
from tests.orchestration.helpers import propose, task_run_in

pytestmark = pytest.mark.django_db


def _expire(**filters: object) -> None:
    ConcurrencyLease.objects.filter(**filters).update(expires_at=timezone.now() - timedelta(seconds=1))


class TestTagLeases:
    @pytest.mark.parametrize(
        ("held", "expired", "status"),
        [
            (1, 0, "WAIT"),  # the one slot is held
            (1, 1, "ACCEPT"),  # its holder stopped renewing: the slot is free again
            (0, 0, "ACCEPT"),
        ],
    )
    def test_an_expired_lease_does_not_count(self, held: int, expired: int, status: str) -> None:
        """A slot held by a process that died comes back once its lease expires, with no reset."""
        services.concurrency_limit_create(tag="db", limit=1)
        hold("db", *[f"dead-{i}" for i in range(held)])
        if expired:
            _expire(holder_id="dead-0")
        runner = task_run_in(None, "Pending", tags=["db"])
        assert propose(runner, Running()).status.value == status

    def test_running_takes_a_lease_per_tag_that_expires_after_the_lease_time(self, settings) -> None:
        settings.ORCHESTRATOR_CONCURRENCY_LEASE_SECONDS = 7
        services.concurrency_limit_create(tag="db", limit=2)
        services.concurrency_limit_create(tag="api", limit=2)
        run = task_run_in(None, "Running", tags=["db", "api", "free"])
        leases = ConcurrencyLease.objects.filter(holder_id=str(run.id))
        assert sorted(lease.limit.tag for lease in leases) == ["api", "db"]
        for lease in leases:
            assert 6 < (lease.expires_at - timezone.now()).total_seconds() <= 7

    @pytest.mark.parametrize("final", [Cancelled, Crashed])
    def test_a_cancelled_or_crashed_run_frees_its_slots_at_once(self, final) -> None:
        services.concurrency_limit_create(tag="db", limit=1)
        run = task_run_in(None, "Running", tags=["db"])
        assert slots_of("db") == [str(run.id)]
        propose(run, final(), force=True)
        assert slots_of("db") == []

    def test_renewal_pushes_back_only_unexpired_leases(self, settings) -> None:
        settings.ORCHESTRATOR_CONCURRENCY_LEASE_SECONDS = 30
        services.concurrency_limit_create(tag="db", limit=5)
        hold("db", "alive", "dead", seconds=5)
        _expire(holder_id="dead")
        renewed = services.concurrency_leases_renew(task_run_ids=["alive", "dead"])
        assert [ConcurrencyLease.objects.get(pk=pk).holder_id for pk in renewed] == ["alive"]
        assert ConcurrencyLease.objects.get(holder_id="alive").expires_at > timezone.now() + timedelta(seconds=25)

    def test_the_reaper_deletes_expired_leases_and_those_of_runs_final_or_gone(self) -> None:
        services.concurrency_limit_create(tag="db", limit=5)
        running = task_run_in(None, "Running", tags=["db"])
        hold("db", "3c1e4f6a-0000-4000-8000-000000000000")  # a run that no longer exists
        hold("db", "not-a-run-id")  # a client may send any holder id
        hold("db", "expired")
        _expire(holder_id="expired")
        assert services.concurrency_leases_reap() == {"expired": 1, "orphaned": 2}
        assert slots_of("db") == [str(running.id)]

    def test_concurrency_holders_lists_the_tag_limits_and_their_runs(self) -> None:
        services.concurrency_limit_create(tag="b", limit=2)
        services.concurrency_limit_create(tag="a", limit=1)
        run = task_run_in(None, "Running", tags=["a", "b"])
        assert concurrency_holders(tags=["b", "a", "unlimited"]) == [
            LimitHolders(tag="a", limit=1, holder_run_ids=[str(run.id)]),
            LimitHolders(tag="b", limit=2, holder_run_ids=[str(run.id)]),
        ]


class TestGlobalLeases:
    def test_slots_add_up_and_release_frees_them(self) -> None:
        limit = services.global_limit_create(name="db", limit=3)
        first = services.concurrency_lease_acquire(global_limit=limit, slots=2, timeout_seconds=0)
        with pytest.raises(services.SlotsUnavailable, match="no 2 free slot"):
            services.concurrency_lease_acquire(global_limit=limit, slots=2, timeout_seconds=0)
        services.concurrency_lease_release(lease=first)
        services.concurrency_lease_acquire(global_limit=limit, slots=3, timeout_seconds=0)
        assert slots_in_use(global_limit_ids=[limit.pk]) == {limit.pk: 3}

    def test_rate_limit_slots_decay_one_after_another(self) -> None:
        """Each rate lease ends slots/rate after the last one: occupied slots fall at the decay rate."""
        limit = services.global_limit_create(name="api", limit=10, slot_decay_per_second=2)
        before = timezone.now()
        leases = [
            services.concurrency_lease_acquire(global_limit=limit, slots=1, mode="rate_limit", timeout_seconds=0)
            for _ in range(4)
        ]
        ends = [(lease.expires_at - before).total_seconds() for lease in leases]
        assert ends == pytest.approx([0.5, 1.0, 1.5, 2.0], abs=0.2)
        with pytest.raises(Exception, match="not released"):
            services.concurrency_lease_release(lease=leases[0])

    @pytest.mark.parametrize(
        ("limit", "decay", "slots", "mode", "message"),
        [
            (2, None, 3, "concurrency", "can never be free"),
            (2, None, 1, "rate_limit", "not a rate limit"),
            (2, None, 1, "bursty", "mode must be one of"),
        ],
    )
    def test_impossible_requests_are_refused(self, limit, decay, slots, mode, message) -> None:
        global_limit = services.global_limit_create(name="db", limit=limit, slot_decay_per_second=decay)
        with pytest.raises(InvalidInput, match=message):
            services.concurrency_lease_acquire(global_limit=global_limit, slots=slots, mode=mode, timeout_seconds=0)


class TestGlobalApi:
    def test_create_acquire_renew_release(self, api) -> None:
        created = api.post("/api/global_concurrency_limits/", {"name": "db", "limit": 2}, format="json")
        assert created.status_code == 201, created.content
        acquired = api.post("/api/global_concurrency_limits/db/acquire/", {"slots": 2}, format="json")
        assert acquired.status_code == 201, acquired.content
        lease = acquired.json()
        body = api.get("/api/global_concurrency_limits/db/").json()
        assert (body["active_slots"], body["holders"][0]["lease"]) == (2, lease["id"])
        refused = api.post("/api/global_concurrency_limits/db/acquire/", {"timeout_seconds": 0}, format="json")
        assert refused.status_code == 423 and "no 1 free slot(s)" in refused.json()["message"]
        assert api.post(f"/api/concurrency_leases/{lease['id']}/renew/").status_code == 200
        renewed = api.post("/api/concurrency_leases/renew/", {"lease_ids": [lease["id"]]}, format="json").json()
        assert renewed["renewed"] == [lease["id"]]
        assert api.post(f"/api/concurrency_leases/{lease['id']}/release/").status_code == 204
        assert api.get("/api/global_concurrency_limits/db/").json()["active_slots"] == 0
        assert api.post(f"/api/concurrency_leases/{lease['id']}/release/").status_code == 404

    @pytest.mark.parametrize(
        ("path", "body", "status", "message"),
        [
            ("global_concurrency_limits/nope/acquire/", {}, 404, "global-concurrency-limit create nope"),
            ("global_concurrency_limits/db/acquire/", {"slots": 5}, 400, "can never be free"),
            ("global_concurrency_limits/db/acquire/", {"slots": 0}, 400, "slots"),
            ("global_concurrency_limits/db/acquire/", {"mode": "x"}, 400, "mode"),
            ("global_concurrency_limits/db/acquire/", {"color": 1}, 400, "unknown field"),
            ("global_concurrency_limits/", {"name": "db", "limit": 1}, 409, "already exists"),
            ("global_concurrency_limits/", {"name": "a/b", "limit": 1}, 400, "may not contain"),
            ("concurrency_leases/not-a-uuid/release/", {}, 404, "no concurrency lease"),
            ("concurrency_leases/renew/", {"lease_ids": ["x"]}, 400, "lease_ids"),
        ],
    )
    def test_bad_requests_get_a_clear_4xx(self, api, path, body, status, message) -> None:
        services.global_limit_create(name="db", limit=2)
        response = api.post(f"/api/{path}", body, format="json")
        assert response.status_code == status, response.content
        assert message in str(response.json())

    def test_keys_are_required_and_scoped(self, key_client) -> None:
        from rest_framework.test import APIClient

        GlobalConcurrencyLimit.objects.create(name="db", limit=1)
        assert APIClient().get("/api/global_concurrency_limits/").status_code == 401
        assert APIClient().post("/api/global_concurrency_limits/db/acquire/", {}).status_code == 401
        reader = key_client("read")
        assert reader.get("/api/global_concurrency_limits/db/").status_code == 200
        assert reader.post("/api/global_concurrency_limits/db/acquire/", {}, format="json").status_code == 403
        assert reader.post("/api/concurrency_leases/renew/", {}, format="json").status_code == 403


def test_global_limits_are_listed_changed_and_deleted_by_name(api) -> None:
    api.post("/api/global_concurrency_limits/", {"name": "db", "limit": 2}, format="json")
    api.post("/api/global_concurrency_limits/", {"name": "api", "limit": 1}, format="json")
    assert [row["name"] for row in api.get("/api/global_concurrency_limits/").json()["results"]] == ["api", "db"]
    changed = api.patch("/api/global_concurrency_limits/db/", {"limit": 4, "slot_decay_per_second": 1.5}, format="json")
    assert (changed.json()["limit"], changed.json()["slot_decay_per_second"]) == (4, 1.5)
    assert api.patch("/api/global_concurrency_limits/db/", {"limit": -1}, format="json").status_code == 400
    assert api.delete("/api/global_concurrency_limits/db/").status_code == 204
    assert api.get("/api/global_concurrency_limits/db/").status_code == 404


def test_waiting_for_tag_slots_answers_whether_they_are_free(api) -> None:
    services.concurrency_limit_create(tag="db", limit=1)
    body = {"tags": ["db", "unlimited"], "timeout_seconds": 0}
    assert api.post("/api/concurrency_leases/wait/", body, format="json").json() == {"free": True, "waited": True}
    hold("db", "holder")
    assert api.post("/api/concurrency_leases/wait/", body, format="json").json() == {"free": False, "waited": True}
    refused = api.post("/api/concurrency_leases/wait/", {"tags": []}, format="json")
    assert refused.status_code == 400 and "tags" in refused.json()["fields"]

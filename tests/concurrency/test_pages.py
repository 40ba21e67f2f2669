"""Global limits on /ui/concurrency/ (with who holds their slots) and in the admin (leases read-only)."""

from __future__ import annotations

import re

import pytest

from apps.concurrency import services
from apps.concurrency.models import ConcurrencyLease
from apps.flows.models import Flow
from apps.runs import services as run_services
from orchestrator.states import Running

pytestmark = pytest.mark.django_db


def test_the_concurrency_page_shows_global_limits_and_their_holders(admin_client) -> None:
    flow = Flow.objects.create(name="etl")
    flow_run, _ = run_services.flow_run_create(flow=flow, state=Running(), name="brisk-otter")
    limit = services.global_limit_create(name="warehouse", limit=3, slot_decay_per_second=None)
    services.concurrency_lease_acquire(global_limit=limit, slots=2, holder_kind="flow_run", holder_id=str(flow_run.id))
    services.concurrency_lease_acquire(global_limit=limit, slots=1, holder_id="script-7")

    page = admin_client.get("/ui/concurrency/").content.decode()

    row = re.search(r'data-name="warehouse".*?</tr>', page, re.S).group(0)
    assert "3 / 3" in row and f'href="/ui/flow-runs/{flow_run.id}/"' in row and "brisk-otter" in row
    assert "client script-7" in row


def test_the_admin_lists_global_limits_and_leases_read_only(admin_client) -> None:
    limit = services.global_limit_create(name="warehouse", limit=1)
    lease = services.concurrency_lease_acquire(global_limit=limit, slots=1, holder_id="script-7")
    assert "warehouse" in admin_client.get("/admin/concurrency/globalconcurrencylimit/").content.decode()
    assert "script-7" in admin_client.get("/admin/concurrency/concurrencylease/").content.decode()
    assert admin_client.get("/admin/concurrency/concurrencylease/add/").status_code == 403
    assert admin_client.post(f"/admin/concurrency/concurrencylease/{lease.pk}/change/", {}).status_code == 403
    assert ConcurrencyLease.objects.filter(pk=lease.pk).exists()

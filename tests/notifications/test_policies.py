"""Notification policies: matching (state types and names, tags, flows, deployments, pools), templates, the API
(bad input names the field, 401/403, the /api/notifications/ alias), the consumer's idempotence and the CLI."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from apps.blocks.services import block_document_create
from apps.notifications.consumer import policy_matches
from apps.notifications.messages import message_render, state_keys, template_problem
from apps.notifications.models import NotificationDelivery, NotificationPolicy
from apps.notifications.services import notification_policy_create
from orchestrator.client.errors import ClientError
from orchestrator.states import Late
from tests.notifications.support import enqueue_everything, fail_run, run_into
from tests.support.server import sqlite_pass_only

RUN = {
    "id": "3f2a",
    "tags": ["nightly", "etl"],
    "flow__name": "load",
    "deployment_id": "0c1d6f2e-0000-0000-0000-000000000001",
    "deployment__name": "load-nightly",
    "work_pool_name": "docker",
}


def policy(**fields: object) -> NotificationPolicy:
    return NotificationPolicy(name="p", **{"state_types": ["FAILED"], **fields})


@sqlite_pass_only
@pytest.mark.parametrize(
    ("fields", "keys", "matches"),
    [
        ({}, state_keys("FAILED", "Failed"), True),
        ({}, state_keys("COMPLETED", "Completed"), False),
        ({"state_types": ["LATE"]}, state_keys("SCHEDULED", "Late"), True),
        ({"state_types": ["LATE"]}, state_keys("SCHEDULED", "Scheduled"), False),
        ({"state_types": ["FAILED"]}, state_keys("FAILED", "TimedOut"), True),
        ({"state_types": ["TIMEDOUT"]}, state_keys("FAILED", "Failed"), False),
        ({"tags": ["nightly", "other"]}, state_keys("FAILED", "Failed"), True),
        ({"tags": ["other"]}, state_keys("FAILED", "Failed"), False),
        ({"flow_names": ["load"]}, state_keys("FAILED", "Failed"), True),
        ({"flow_names": ["extract"]}, state_keys("FAILED", "Failed"), False),
        ({"deployments": ["load-nightly"]}, state_keys("FAILED", "Failed"), True),
        ({"deployments": ["0c1d6f2e-0000-0000-0000-000000000001"]}, state_keys("FAILED", "Failed"), True),
        ({"deployments": ["other"]}, state_keys("FAILED", "Failed"), False),
        ({"work_pools": ["docker"]}, state_keys("FAILED", "Failed"), True),
        ({"work_pools": ["k8s"]}, state_keys("FAILED", "Failed"), False),
        ({"tags": ["etl"], "work_pools": ["k8s"]}, state_keys("FAILED", "Failed"), False),
    ],
)
def test_policy_matching(fields: dict, keys: frozenset[str], matches: bool) -> None:
    """Every non-empty filter must pass; a state matches by its type or its upper-cased name (LATE)."""
    assert policy_matches(policy(**fields), keys=keys, run=RUN) is matches


@sqlite_pass_only
def test_template_rendering_and_problems() -> None:
    """A template names known placeholders only; a missing value renders empty, never raises."""
    text = message_render(
        "{flow_run_name} is {state_name}: {state_message}", {"flow_run_name": "r", "state_name": "Failed"}
    )
    assert text == "r is Failed: "
    assert "unknown placeholder {run}" in (template_problem("{run} failed") or "")
    assert template_problem("{flow_run_name") is not None
    assert template_problem("{{literal}} {flow_run_url}") is None


@pytest.fixture
def webhook_block(db: None) -> str:
    block_document_create(block_type="webhook", name="ops", data={"url": "http://127.0.0.1:9/hook"})
    block_document_create(block_type="secret", name="token", data={"value": "s3cr3t"})
    block_document_create(block_type="smtp", name="mail", data={"host": "127.0.0.1", "from_address": "o@example.com"})
    return "webhook/ops"


BODY = {"name": "failures", "state_types": ["failed", "Crashed", "LATE"], "block": "webhook/ops"}


def test_api_create_read_update_delete_and_alias(api: APIClient, webhook_block: str) -> None:
    """State types are stored upper-cased; /api/notifications/ serves the same policies (SPEC §7)."""
    created = api.post("/api/notification_policies/", {**BODY, "tags": ["nightly"]}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["state_types"] == ["FAILED", "CRASHED", "LATE"] and created.json()["block"] == "webhook/ops"
    assert "{flow_run_url}" in created.json()["message_template"]
    assert api.get("/api/notifications/failures/").json()["id"] == created.json()["id"]
    assert [row["name"] for row in api.get("/api/notification_policies/").json()["results"]] == ["failures"]
    patched = api.patch("/api/notification_policies/failures/", {"is_active": False}, format="json")
    assert patched.status_code == 200 and patched.json()["is_active"] is False
    assert api.post("/api/notification_policies/", BODY, format="json").status_code == 409
    assert api.delete("/api/notifications/failures/").status_code == 204
    assert api.get("/api/notification_policies/failures/").status_code == 404


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"state_types": ["EXPLODED"]}, "state_types", "unknown state type 'EXPLODED'"),
        ({"state_types": []}, "state_types", ""),
        ({"block": "secret/token"}, "block", "cannot send notifications"),
        ({"block": "webhook/missing"}, "block", "no block 'webhook/missing'"),
        ({"block": "ops"}, "block", "TYPE/NAME"),
        ({"block": "smtp/mail"}, "email_to", "needs at least one address"),
        ({"block": "smtp/mail", "email_to": ["nobody"]}, "email_to", "not an email address"),
        ({"message_template": "{run} failed"}, "message_template", "unknown placeholder {run}"),
        ({"message_template": "{flow_run_name"}, "message_template", ""),
        ({"name": "a/b"}, "name", ""),
        ({"bogus": 1}, "bogus", "unknown field"),
        ({"tags": "nightly"}, "tags", ""),
    ],
)
def test_api_bad_input_names_the_field(
    api: APIClient, webhook_block: str, change: dict, field: str, words: str
) -> None:
    response = api.post("/api/notification_policies/", {**BODY, **change}, format="json")
    assert response.status_code == 400, response.json()
    text = str(response.json())
    assert field in text and words in text
    assert not NotificationPolicy.objects.exists()


def test_api_refusals(client: APIClient, key_client, webhook_block: str) -> None:
    """No key: 401; a read key may list but not create, test or delete (403); nothing is written."""
    assert APIClient().get("/api/notification_policies/").status_code == 401
    assert APIClient().get("/api/notification_deliveries/").status_code == 401
    reader = key_client("read")
    assert reader.get("/api/notification_policies/").status_code == 200
    assert reader.post("/api/notification_policies/", BODY, format="json").status_code == 403
    assert reader.post("/api/notifications/", BODY, format="json").status_code == 403
    assert not NotificationPolicy.objects.exists()


def test_deliveries_filter_refuses_an_unknown_status(api: APIClient) -> None:
    response = api.get("/api/notification_deliveries/?status=lost")
    assert response.status_code == 400 and "status" in response.json()["fields"]


@pytest.mark.django_db
def test_consumer_handling_events_twice_makes_one_delivery_per_policy() -> None:
    """UNIQUE (policy, event_id): a batch handled again after a crash adds nothing (none twice per policy)."""
    block, _ = block_document_create(block_type="webhook", name="ops", data={"url": "http://127.0.0.1:9/hook"})
    notification_policy_create(name="failures", state_types=["FAILED"], block=block)
    notification_policy_create(name="late", state_types=["LATE"], block=block, tags=["nightly"])
    notification_policy_create(name="etl-only", state_types=["FAILED"], block=block, flow_names=["other"])
    failed = fail_run()
    late = run_into(Late(), tags=["nightly"])
    run_into(Late())  # not tagged nightly: no delivery
    assert enqueue_everything() == 2
    enqueue_everything()
    rows = list(NotificationDelivery.objects.values_list("policy__name", "flow_run_id", "context__state_name"))
    assert sorted(rows, key=str) == sorted([("failures", failed.id, "Failed"), ("late", late.id, "Late")], key=str)


def cli(*args: str) -> str:
    out = StringIO()
    call_command("notification-policy", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_cli_create_ls_inspect_delete_and_errors() -> None:
    block_document_create(block_type="webhook", name="ops", data={"url": "http://127.0.0.1:9/hook"})
    created = cli("create", "failures", "--states", "FAILED,CRASHED", "--block", "webhook/ops", "--tag", "nightly")
    assert created.strip() == "Created notification policy 'failures': FAILED, CRASHED through webhook/ops."
    listed = cli("ls")
    assert "failures" in listed and "tags=nightly" in listed
    inspected = cli("inspect", "failures")
    assert "state_types:  FAILED, CRASHED" in inspected and "latest deliveries: none" in inspected
    with pytest.raises(ClientError, match="unknown state type 'BOOM'"):
        cli("create", "other", "--states", "BOOM", "--block", "webhook/ops")
    with pytest.raises(ClientError, match="no notification policy named 'nope'"):
        cli("inspect", "nope")
    assert cli("delete", "failures").strip() == "Deleted notification policy 'failures'."


def test_a_block_a_policy_sends_through_cannot_be_deleted(api: APIClient, webhook_block: str) -> None:
    """on_delete=PROTECT: a 409 naming the policy, never a 500."""
    assert api.post("/api/notification_policies/", BODY, format="json").status_code == 201
    block_id = api.get("/api/block_documents/webhook/ops/").json()["id"]
    refused = api.delete(f"/api/block_documents/{block_id}/")
    assert refused.status_code == 409 and "notification policy 'failures'" in refused.json()["message"]


def test_admin_form_refuses_what_the_api_refuses(admin_client, webhook_block: str) -> None:
    """The admin's form runs the service's checks: an unknown state type is a form error, not a saved policy."""
    from apps.blocks.models import BlockDocument

    block = BlockDocument.objects.get(block_type="webhook", name="ops")
    form = {
        "name": "failures",
        "is_active": "on",
        "state_types": '["failed"]',
        "tags": "[]",
        "flow_names": "[]",
        "deployments": "[]",
        "work_pools": "[]",
        "block": str(block.pk),
        "email_to": "[]",
        "message_template": "{flow_run_name} failed",
    }
    refused = admin_client.post("/admin/notifications/notificationpolicy/add/", {**form, "state_types": '["BOOM"]'})
    assert refused.status_code == 200 and "unknown state type" in refused.content.decode()
    assert not NotificationPolicy.objects.exists()
    saved = admin_client.post("/admin/notifications/notificationpolicy/add/", form)
    assert saved.status_code == 302
    assert NotificationPolicy.objects.get().state_types == ["FAILED"]

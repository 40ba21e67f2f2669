"""API keys through the API: created once and shown once, stored hashed, checked on every request, revoked."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.keys import key_hash
from apps.accounts.models import ApiKey
from apps.accounts.services import api_key_create
from apps.flows.models import Flow

pytestmark = pytest.mark.django_db


def bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_an_admin_creates_a_key_that_is_shown_once_and_stored_hashed(admin_api):
    created = admin_api.post("/api/api_keys/", {"name": "ci", "scope": "read"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    key = body["key"]
    assert key.startswith("orch_") and body["prefix"] == key[:12] and body["scope"] == "read"
    row = ApiKey.objects.get(name="ci")
    assert row.key_hash == key_hash(key)
    assert key not in str(ApiKey.objects.filter(name="ci").values().get())  # no column holds it
    listed = admin_api.get("/api/api_keys/").json()["results"]
    assert {entry["name"] for entry in listed} == {"test-admin", "ci"}
    assert all("key" not in entry and "key_hash" not in entry for entry in listed)
    assert admin_api.get("/api/api_keys/ci/").json()["status"] == "active"
    assert bearer(key).get("/api/flows/").status_code == 200


def test_a_key_records_when_it_was_last_used():
    api_key, key = api_key_create(name="worker", scope="write")
    assert api_key.last_used_at is None
    assert bearer(key).get("/api/flows/").status_code == 200
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None and timezone.now() - api_key.last_used_at < timedelta(seconds=10)


def test_no_key_is_401_with_the_api_error_and_how_to_get_one():
    answer = APIClient().get("/api/flows/")
    assert answer.status_code == 401
    assert answer["WWW-Authenticate"].startswith("Bearer")
    body = answer.json()
    assert body["error"] == "not_authenticated" and "ORCHESTRATOR_API_KEY" in body["message"]


@pytest.mark.parametrize("header", ["Bearer", "Basic dXNlcjpwYXNz", "Bearer two words", "Token abcdefghijklmnopqrstuv"])
def test_a_malformed_authorization_header_is_401(header: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    answer = client.get("/api/flows/")
    assert answer.status_code == 401
    assert answer.json() == {
        "error": "authentication_failed",
        "message": "malformed Authorization header: expected `Bearer <key>`",
    }


def test_unknown_revoked_and_expired_keys_are_401_each_saying_why(admin_api):
    assert (
        bearer("orch_" + "x" * 43).get("/api/flows/").json()["message"] == "unknown API key: check ORCHESTRATOR_API_KEY"
    )
    _, revoked = api_key_create(name="old", scope="write")
    assert admin_api.delete("/api/api_keys/old/").status_code == 204
    answer = bearer(revoked).get("/api/flows/")
    assert answer.status_code == 401 and answer.json()["message"] == "the API key 'old' was revoked"
    expired_row, expired = api_key_create(name="short", scope="write", expires_in_days=1)
    ApiKey.objects.filter(pk=expired_row.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    answer = bearer(expired).get("/api/flows/")
    assert answer.status_code == 401 and answer.json()["message"].startswith("the API key 'short' expired on ")


def test_a_revoked_key_stops_working_at_once_even_when_just_used(admin_api):
    _, key = api_key_create(name="laptop", scope="write")
    client = bearer(key)
    assert client.get("/api/flows/").status_code == 200  # now cached in this process
    assert admin_api.delete("/api/api_keys/laptop/").status_code == 204
    assert client.get("/api/flows/").status_code == 401


def test_a_read_key_reads_and_its_writes_are_403_and_write_nothing():
    _, key = api_key_create(name="dashboard", scope="read")
    client = bearer(key)
    assert client.get("/api/flow_runs/").status_code == 200
    refused = client.post("/api/flows/", {"name": "etl"}, format="json")
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "permission_denied",
        "message": "API key 'dashboard' has scope read; POST /api/flows/ needs write",
    }
    assert not Flow.objects.exists()


def test_keys_are_managed_with_the_admin_scope_only(api, key_client):
    for client in (api, key_client("read")):
        answer = client.get("/api/api_keys/")
        assert answer.status_code == 403 and answer.json()["message"].endswith("GET /api/api_keys/ needs admin")
    assert api.post("/api/api_keys/", {"name": "mine", "scope": "admin"}, format="json").status_code == 403
    assert not ApiKey.objects.filter(name="mine").exists()


def test_bad_key_requests_are_400_or_409_naming_the_field(admin_api):
    assert admin_api.post("/api/api_keys/", {"name": "x", "scope": "root"}, format="json").status_code == 400
    answer = admin_api.post("/api/api_keys/", {"name": "x", "expires_in_days": 0}, format="json")
    assert answer.status_code == 400 and "expires_in_days" in answer.json()["fields"]
    assert admin_api.post("/api/api_keys/", {"name": "ci"}, format="json").status_code == 201
    taken = admin_api.post("/api/api_keys/", {"name": "ci"}, format="json")
    assert taken.status_code == 409 and "revoke it first" in taken.json()["message"]
    assert admin_api.post("/api/api_keys/", {"name": "ci", "extra": 1}, format="json").status_code == 400
    assert admin_api.delete("/api/api_keys/nobody/").status_code == 404
    assert admin_api.get("/api/api_keys/?active=maybe").status_code == 400


def test_a_revoked_name_can_be_used_again_and_the_old_row_stays(admin_api):
    admin_api.post("/api/api_keys/", {"name": "ci"}, format="json")
    admin_api.delete("/api/api_keys/ci/")
    assert admin_api.post("/api/api_keys/", {"name": "ci"}, format="json").status_code == 201
    assert ApiKey.objects.filter(name="ci").count() == 2
    revoked = admin_api.get("/api/api_keys/?active=false").json()["results"]
    assert [(entry["name"], entry["status"]) for entry in revoked] == [("ci", "revoked")]


def test_health_stays_open_and_everything_else_needs_a_key():
    assert APIClient().get("/api/health/").status_code == 200
    for path in ("/api/", "/api/version/", "/api/schema/", "/api/flow_runs/"):
        assert APIClient().get(path).status_code == 401, path


def test_with_checking_off_anyone_may_call_the_api(settings):
    settings.API_AUTH = False
    assert APIClient().post("/api/flows/", {"name": "open"}, format="json").status_code == 201


def test_a_session_user_gets_the_scope_of_their_role_and_csrf_guards_their_writes(django_user_model):
    from django.contrib.auth.models import Group

    viewer = django_user_model.objects.create_user("vera", password="pw-123456789")
    viewer.groups.add(Group.objects.get(name="Viewer"))
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(viewer)
    assert client.get("/api/flows/").status_code == 200
    assert client.post("/api/flows/", {"name": "etl"}, format="json").status_code == 403
    operator = django_user_model.objects.create_user("otto", password="pw-123456789")
    operator.groups.add(Group.objects.get(name="Operator"))
    client.force_login(operator)
    refused = client.post("/api/flows/", {"name": "etl"}, format="json")  # no CSRF token
    assert refused.status_code == 403 and "CSRF" in refused.json()["message"]
    assert not Flow.objects.exists()
    nobody = django_user_model.objects.create_user("nina", password="pw-123456789")
    client.force_login(nobody)
    assert client.get("/api/flows/").status_code == 403

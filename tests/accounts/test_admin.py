"""API keys in the admin: made with a form, shown once in the message after saving, never again; revoked with an
action."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts.models import ApiKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(django_user_model) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", password="pw-123456789"))
    return client


def test_a_key_made_in_the_admin_is_shown_once_and_works(admin_client_: Client):
    answer = admin_client_.post(
        "/admin/accounts/apikey/add/", {"name": "ci", "scope": "read", "expires_in_days": "30"}, follow=True
    )
    assert answer.status_code == 200
    match = re.search(r"The key &#x27;ci&#x27; is (orch_[A-Za-z0-9_-]+)", answer.content.decode())
    assert match, answer.content.decode()[:2000]
    key = match.group(1)
    row = ApiKey.objects.get(name="ci")
    assert row.scope == "read" and row.expires_at is not None and row.owner is None
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/api/flows/").status_code == 200

    for page in ("/admin/accounts/apikey/", f"/admin/accounts/apikey/{row.pk}/change/"):
        shown = admin_client_.get(page).content.decode()
        assert row.prefix in shown and key not in shown and row.key_hash not in shown


def test_the_revoke_action_stops_the_selected_keys(admin_client_: Client):
    admin_client_.post("/admin/accounts/apikey/add/", {"name": "old", "scope": "write"})
    row = ApiKey.objects.get(name="old")
    answer = admin_client_.post(
        "/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [str(row.pk)]}, follow=True
    )
    assert "Revoked 1 key." in answer.content.decode()
    row.refresh_from_db()
    assert row.status == "revoked"

"""Failed API key checks are limited per client address: past the limit, that address gets 429 (docs/security.md)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.test import APIClient

from tests.api.support import assert_error
from tests.conftest import api_key_for

GUESSER = "203.0.113.7"
NEIGHBOUR = "198.51.100.9"


def test_too_many_failed_keys_from_one_address_get_429_and_others_still_get_in(db) -> None:
    """A key guesser is slowed down without locking out a legitimate client at another address."""
    good_key = api_key_for("read")
    client = APIClient()
    for _ in range(settings.API_AUTH_FAILURE_LIMIT):
        response = client.get("/api/flows/", HTTP_AUTHORIZATION="Bearer orch_" + "g" * 43, REMOTE_ADDR=GUESSER)
        assert_error(response, 401)

    refused = client.get("/api/flows/", HTTP_AUTHORIZATION=f"Bearer {good_key}", REMOTE_ADDR=GUESSER)
    body = assert_error(refused, 429, code="throttled")
    assert "too many failed API key attempts" in body["message"]
    assert good_key not in body["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= settings.API_AUTH_FAILURE_WINDOW_SECONDS

    elsewhere = client.get("/api/flows/", HTTP_AUTHORIZATION=f"Bearer {good_key}", REMOTE_ADDR=NEIGHBOUR)
    assert elsewhere.status_code == 200, elsewhere.content[:300]
    # The open endpoint stays open to the guesser too: health checks do not carry keys.
    assert client.get("/api/health/", REMOTE_ADDR=GUESSER).status_code == 200

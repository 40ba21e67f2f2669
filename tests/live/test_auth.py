"""Who may open a live websocket (apps/live/auth.py): a session user with a role, or an `Authorization: Bearer`
key (every scope reads); nobody else, and never a key in the query string. With ORCHESTRATOR_API_AUTH off,
everyone. Through Channels' communicator and the real routing (origin check, session middleware)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from apps.accounts.authentication import failed_attempts
from apps.accounts.models import ApiKey
from apps.accounts.roles import ADMIN, OPERATOR, VIEWER
from apps.accounts.services import api_key_create, api_key_revoke
from apps.live.routing import websocket_application
from tests.live.support import LoopThread, session_cookie
from tests.support.server import sqlite_pass_only

# Authorization and hardening are the same code on both databases: the SQLite pass runs these.
pytestmark = [pytest.mark.django_db(transaction=True), sqlite_pass_only]

PATHS = ("/ws/flow-runs/", f"/ws/flow-runs/{uuid.uuid4()}/")


@pytest.fixture
def loop():
    thread = LoopThread()
    yield thread
    thread.close()


def opens(loop: LoopThread, path: str, *headers: tuple[bytes, bytes]) -> bool:
    """Whether the handshake is accepted (an unknown run's socket is accepted, then closed with 4404)."""

    async def handshake() -> bool:
        communicator = WebsocketCommunicator(
            websocket_application,
            path,
            headers=[(b"host", b"testserver"), (b"origin", b"http://testserver"), *headers],
        )
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    return loop.run(handshake())


def bearer(key: str) -> tuple[bytes, bytes]:
    return (b"authorization", f"Bearer {key}".encode())


def test_a_session_user_with_a_role_is_accepted_and_one_without_is_refused(loop) -> None:
    for role in (VIEWER, OPERATOR, ADMIN):
        cookie = session_cookie(staff=False, username=role.lower(), role=role)
        assert all(opens(loop, path, (b"cookie", cookie)) for path in PATHS), role
    nobody = session_cookie(staff=False, username="nobody")
    assert not any(opens(loop, path, (b"cookie", nobody)) for path in PATHS)


def test_a_key_of_any_scope_in_the_header_is_accepted_and_its_use_recorded(loop) -> None:
    for scope in ("read", "write", "admin"):
        api_key, key = api_key_create(name=f"ws-{scope}", scope=scope)
        assert all(opens(loop, path, bearer(key)) for path in PATHS), scope
        assert ApiKey.objects.get(pk=api_key.pk).last_used_at is not None


def test_no_credentials_and_bad_keys_are_refused(loop) -> None:
    """Each refused handshake is a 403 (Daphne's answer to a close before accept)."""
    _, revoked = api_key_create(name="revoked", scope="read")
    api_key_revoke(name="revoked")
    expired_key, expired = api_key_create(name="expired", scope="admin")
    ApiKey.objects.filter(pk=expired_key.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    _, valid = api_key_create(name="valid", scope="read")
    refused: list[tuple[tuple[bytes, bytes], ...]] = [
        (),
        ((b"cookie", b"sessionid=not-a-session"),),
        (bearer("orch_" + "x" * 43),),  # unknown
        (bearer(revoked),),
        (bearer(expired),),
        (bearer("short"),),  # malformed
        ((b"authorization", f"Basic {valid}".encode()),),
    ]
    for headers in refused:
        for path in PATHS:
            assert not opens(loop, path, *headers), (path, headers)
    # A key in the URL would end in access logs: it is not read from there.
    assert not opens(loop, f"/ws/flow-runs/?key={valid}")
    assert not opens(loop, f"/ws/flow-runs/?api_key={valid}")


def test_with_api_auth_off_everyone_is_accepted(loop, settings) -> None:
    settings.API_AUTH = False
    assert all(opens(loop, path) for path in PATHS)


def test_failed_key_checks_count_towards_the_apis_limit_per_address(loop, settings) -> None:
    """Guessing keys through websockets is no faster than through the API: past the limit, even a valid key is
    refused from that address until the window passes."""
    settings.API_AUTH_FAILURE_LIMIT = 3
    _, valid = api_key_create(name="valid", scope="read")
    for _ in range(3):
        assert not opens(loop, "/ws/flow-runs/", bearer("orch_" + "y" * 43))
    assert not opens(loop, "/ws/flow-runs/", bearer(valid))
    failed_attempts.reset()  # the window passed
    assert opens(loop, "/ws/flow-runs/", bearer(valid))

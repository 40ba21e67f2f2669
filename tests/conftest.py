"""Shared fixtures. The suite runs on the database ORCHESTRATOR_DATABASE_URL names (SQLite or PostgreSQL).

The API requires keys (docs/security.md): `api` sends a `write` key, what a client, a worker or `deploy` has;
`admin_api` an `admin` key; `key_client(scope)` any other.
"""

import signal
from collections.abc import Callable, Iterator

import pytest
from rest_framework.test import APIClient

pytest_plugins = ["tests.support.server", "tests.support.browser"]

# Tests stop the processes they start with Ctrl+C (SIGINT). A suite started in the background of a script inherits
# SIGINT ignored, and so would every process it starts (an ignored signal stays ignored across exec): `serve` and
# `server services run` would never stop. A handled signal is reset to its default in the child.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# The slowest files (real servers, workers and CLI processes), started first: with `pytest -n 2` a long test that
# starts last leaves the other core idle until it ends. Measured with `--durations`; the order within stays.
SLOW_FIRST = [
    "tests/docs/test_readme.py",
    "tests/work_pools/test_cli.py",
    "tests/workers/",
    "tests/deployments/test_serve_and_cli.py",
    "tests/cli/",
    "tests/accounts/test_cli.py",
    "tests/sdk/test_http_mode.py",
    "tests/ui/test_browser.py",
    "tests/sdk/test_client.py",
    "tests/server_services/",
    "tests/live/test_server.py",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return next((index for index, prefix in enumerate(SLOW_FIRST) if path.startswith(prefix)), len(SLOW_FIRST))

    items.sort(key=rank)  # stable: the same order on every xdist worker


def api_key_for(scope: str, name: str | None = None) -> str:
    from apps.accounts.services import api_key_create

    return api_key_create(name=name or f"test-{scope}", scope=scope)[1]


def authenticated(client: APIClient, scope: str) -> APIClient:
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(scope)}")
    return client


@pytest.fixture(autouse=True)
def _fresh_auth_state() -> Iterator[None]:
    """Each test starts with no failed key attempts and no cached key on record (both live in this process)."""
    yield
    from apps.accounts.authentication import failed_attempts, forget_cached_keys

    failed_attempts.reset()
    forget_cached_keys()


@pytest.fixture
def api(db) -> APIClient:
    return authenticated(APIClient(), "write")


@pytest.fixture
def admin_api(db) -> APIClient:
    return authenticated(APIClient(), "admin")


@pytest.fixture
def key_client(db) -> Callable[[str], APIClient]:
    """A new client sending a key of the given scope."""
    return lambda scope: authenticated(APIClient(), scope)

"""End to end: the hardening of a real `orchestrator server start` (docs/security.md).

Host names it answers, security headers, the production (HTTPS) profile, private files in its home, and API keys
kept out of its output.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.live.realtime import admin_credentials, admin_session_cookie, websocket_url
from tests.support.cli import orchestrator_env, run_orchestrator
from tests.support.server import RunningServer, sqlite_pass_only, start_server, suite_database_url

# Authorization and hardening are the same code on both databases: the SQLite pass runs these.
pytestmark = [pytest.mark.e2e, sqlite_pass_only]

SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"}


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server for the module, with its access log on, in a home that exists (mode 0755) before it starts."""
    home = tmp_path_factory.mktemp("security") / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    with start_server(home=home, args=["--access-log"]) as running:
        yield running


def test_a_request_for_another_host_name_gets_400_json(server: RunningServer) -> None:
    """DNS rebinding: a page on evil.example whose name resolves to 127.0.0.1 cannot use the API."""
    for path in ("/api/health/", "/api/flows/", "/ui/"):
        response = httpx.get(f"{server.base_url}{path}", headers={**server.headers, "Host": "evil.example"})
        assert response.status_code == 400, (path, response.status_code, response.text[:300])
        assert response.headers["content-type"].startswith("application/json"), response.headers
        body = response.json()
        assert body["error"] == "bad_request" and "ORCHESTRATOR_ALLOWED_HOSTS" in body["message"], body
    port = server.base_url.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
        response = httpx.get(f"{server.api_url}/flows/", headers={**server.headers, "Host": host})
        assert response.status_code == 200, (host, response.status_code, response.text[:300])


def test_pages_and_api_send_security_headers(server: RunningServer) -> None:
    """No MIME sniffing, no referrer to other sites, no framing (clickjacking), on every kind of answer."""
    answers = {
        "API": httpx.get(f"{server.api_url}/flows/", headers=server.headers),
        "API error": httpx.get(f"{server.api_url}/flows/"),
        "health": httpx.get(f"{server.api_url}/health/"),
        "login page": httpx.get(f"{server.base_url}/admin/login/"),
        "UI redirect": httpx.get(f"{server.base_url}/ui/"),
    }
    assert answers["API"].status_code == 200 and answers["API error"].status_code == 401
    for name, response in answers.items():
        for header, value in SECURITY_HEADERS.items():
            assert response.headers.get(header) == value, (name, header, dict(response.headers))


def test_home_and_its_files_are_readable_by_their_owner_only(server: RunningServer) -> None:
    """Other users of the machine read no run, key or secret in ORCHESTRATOR_HOME (0755 before the start)."""
    httpx.post(f"{server.api_url}/flows/", headers=server.headers, json={"name": "private"}).raise_for_status()
    assert mode(server.home) == "0o700"
    private = [server.home / "secret_key", server.home / "profiles.toml"]
    if not (suite_database_url() or "").startswith("postgres"):
        database = server.home / "orchestrator.db"
        private += [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
    for path in private:
        assert path.exists(), path
        assert mode(path) == "0o600", (path, mode(path))
    assert "readable by its owner only (mode 700)" in server.output()


@sqlite_pass_only
def test_a_new_home_is_created_readable_by_its_owner_only(tmp_path: Path) -> None:
    """The first command on a machine creates the home 0700, its secret key and profiles 0600."""
    home = tmp_path / "new" / "home"
    result = run_orchestrator("config", "set", "ORCHESTRATOR_LOGGING_LEVEL=INFO", env=orchestrator_env(home))
    assert result.returncode == 0, result.stderr
    assert mode(home) == "0o700"
    assert mode(home / "profiles.toml") == "0o600"
    assert mode(home / "secret_key") == "0o600"


def test_api_keys_never_appear_in_the_server_output(server: RunningServer) -> None:
    """The access log prints paths and statuses, never the Authorization header; errors never repeat a key."""
    wrong_key = "orch_" + secrets.token_urlsafe(32)
    refused = httpx.get(f"{server.api_url}/flows/?marker=refused", headers={"Authorization": f"Bearer {wrong_key}"})
    assert refused.status_code == 401 and wrong_key not in refused.text
    spaced = httpx.get(
        f"{server.api_url}/flows/", headers={"Authorization": f"Bearer {wrong_key[:20]} {wrong_key[20:]}"}
    )
    assert spaced.status_code == 401 and wrong_key[5:20] not in spaced.text
    allowed = httpx.get(f"{server.api_url}/flows/?marker=allowed", headers=server.headers)
    assert allowed.status_code == 200
    output = server.output()
    assert "/api/flows/?marker=refused" in output and "/api/flows/?marker=allowed" in output, output[-2000:]
    assert wrong_key[5:20] not in output and server.api_key[5:20] not in output


@sqlite_pass_only
def test_check_deploy_is_clean_in_the_https_profile(tmp_path: Path) -> None:
    """`ORCHESTRATOR_HTTPS=true` and a secret key of one's own: Django's deployment checklist has nothing to say."""
    env = orchestrator_env(tmp_path, ORCHESTRATOR_HTTPS="true", ORCHESTRATOR_SECRET_KEY=secrets.token_urlsafe(50))
    result = run_orchestrator("django", "check", "--deploy", env=env)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr


def test_the_https_profile_redirects_http_and_sends_hsts(tmp_path: Path) -> None:
    """Behind a TLS proxy: plain http is redirected (the health check excepted), https answers get HSTS and the
    local CLI, calling the API in its own process, still works."""
    with start_server(home=tmp_path / "https", settings={"ORCHESTRATOR_HTTPS": "true"}) as server:
        plain = httpx.get(f"{server.api_url}/flows/", headers=server.headers)
        assert plain.status_code == 301 and plain.headers["location"].startswith("https://"), plain.headers
        assert httpx.get(f"{server.api_url}/health/").status_code == 200
        proxied = httpx.get(f"{server.api_url}/flows/", headers={**server.headers, "X-Forwarded-Proto": "https"})
        assert proxied.status_code == 200, proxied.text[:300]
        assert proxied.headers["Strict-Transport-Security"].startswith("max-age=31536000"), proxied.headers
        result = run_orchestrator("flow-run", "ls", env=server.env)
        assert result.returncode == 0, result.stdout + result.stderr


def test_a_websocket_from_a_page_of_another_site_is_refused(server: RunningServer) -> None:
    """A page on another site (or a DNS-rebound name) cannot open the live updates with its visitor's session; the
    server's own pages can, and so can a client that is no browser (it sends no Origin)."""
    cookie = admin_session_cookie(server.base_url, *admin_credentials(server.output()))
    url = websocket_url(server.base_url, "/ws/flow-runs/")

    async def handshake(origin: str | None) -> int:
        headers = {"Cookie": cookie, **({"Origin": origin} if origin else {})}
        try:
            async with connect(url, additional_headers=headers):
                return 101
        except InvalidStatus as refused:
            return refused.response.status_code

    assert asyncio.run(handshake("http://evil.example")) == 403
    assert asyncio.run(handshake(server.base_url)) == 101
    assert asyncio.run(handshake(None)) == 101


def health_status(server: RunningServer, host: str) -> int:
    return httpx.get(f"{server.api_url}/health/", headers={"Host": host}).status_code


def test_listening_on_every_address_also_answers_the_machine_names(tmp_path: Path) -> None:
    """`--host 0.0.0.0` is for other machines, which use this one's name; other names stay refused."""
    with start_server(home=tmp_path / "everywhere", args=["--host", "0.0.0.0"]) as server:
        for host in (socket.gethostname(), socket.getfqdn(), "localhost", "127.0.0.1"):
            assert health_status(server, host) == 200, host
        assert health_status(server, "evil.example") == 400


def test_orchestrator_allowed_hosts_replaces_the_default_names(tmp_path: Path) -> None:
    """Behind a proxy the public name is the one to answer; the setting lists every name, loopback included."""
    settings = {"ORCHESTRATOR_ALLOWED_HOSTS": "127.0.0.1, orchestrator.example"}
    with start_server(home=tmp_path / "named", settings=settings) as server:
        assert health_status(server, "orchestrator.example") == 200
        assert health_status(server, "127.0.0.1") == 200
        assert health_status(server, "localhost") == 400

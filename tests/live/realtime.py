"""A websocket client's side of a real server, shared by the end-to-end tests and benchmarks/live_latency.py: log
in through the admin's login form (the session cookie the live pages use) and open /ws/ sockets with it."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

ADMIN_PASSWORD_LINE = re.compile(r"created the admin user: username (\S+); its password is in (\S+) ")


def admin_credentials(server_output: str) -> tuple[str, str]:
    """The admin user `server start` created: its name, and its password from the file the server named."""
    match = ADMIN_PASSWORD_LINE.search(server_output)
    if match is None:
        raise RuntimeError(f"the server created no admin user:\n{server_output}")
    return match.group(1), Path(match.group(2)).read_text().strip()


def admin_session_cookie(base_url: str, username: str, password: str) -> str:
    """Log in through /admin/login/ as a browser does; the `Cookie` header value of the session."""
    with httpx.Client(base_url=base_url, timeout=10) as client:
        form = client.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token is not None, form.text[:500]
        answer = client.post(
            "/admin/login/?next=/admin/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": token.group(1), "next": "/admin/"},
            headers={"Referer": f"{base_url}/admin/login/"},
        )
        assert answer.status_code == 302, f"login failed: {answer.status_code} {answer.text[:300]}"
        return f"sessionid={client.cookies['sessionid']}"


def websocket_url(base_url: str, path: str) -> str:
    return "ws" + base_url.removeprefix("http") + path

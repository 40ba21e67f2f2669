"""End to end: a real `orchestrator server start` process serving HTTP, and stopping cleanly."""

from __future__ import annotations

import os
import re
import signal
import stat
import time
from pathlib import Path

import httpx
import pytest

from tests.support.cli import orchestrator_env, run_orchestrator
from tests.support.server import RunningServer, sqlite_pass_only, start_server, throwaway_database

PASSWORD_LINE = re.compile(r"created the admin user: username admin; its password is in (\S+) \(readable by you only\)")

pytestmark = pytest.mark.e2e


def child_pids(pid: int) -> list[int]:
    """Processes whose parent is `pid`, read from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may contain spaces; the parent pid is the 2nd field after its ')'.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            children.append(int(entry.name))
    return children


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def admin_login(base_url: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=base_url) as client:
        page = client.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        return client.post(
            "/admin/login/?next=/admin/",
            data={"csrfmiddlewaretoken": token, "username": "admin", "password": password, "next": "/admin/"},
        )


def test_server_serves_api_admin_and_static_files_and_stops_on_sigint(
    orchestrator_server_process: RunningServer,
) -> None:
    """The one command a new user runs must give a working API, UI and styles, and end cleanly on Ctrl+C."""
    server = orchestrator_server_process
    health = httpx.get(f"{server.api_url}/health/")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert httpx.get(f"{server.base_url}/admin/login/").status_code == 200
    css = httpx.get(f"{server.base_url}/static/admin/css/base.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")

    output = server.output()
    assert f"API: {server.base_url}/api\n" in output
    assert f"UI:  {server.base_url}/ui/ (configuration in the admin: {server.base_url}/admin/)\n" in output
    assert f"orchestrator config set ORCHESTRATOR_API_URL={server.base_url}/api\n" in output
    assert "GET /api/health/" not in output  # access log is off by default

    assert server.stop(signal.SIGINT) == 0
    assert "server stopped" in server.output()
    assert "Traceback" not in server.output()


def test_admin_password_is_saved_for_its_owner_never_printed_and_logs_in(tmp_path: Path) -> None:
    """The first start's random password is the only way into the UI: it goes to a file only the home's owner
    reads, never to the output (which ends in logs); a restart must not reset it."""
    with throwaway_database(tmp_path) as database_url:
        with start_server(home=tmp_path, database_url=database_url) as first:
            match = PASSWORD_LINE.search(first.output())
            assert match, first.output()
            password_file = Path(match.group(1))
            assert password_file == tmp_path / "admin_password"
            assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
            password = password_file.read_text().strip()
            assert len(password) >= 20 and password not in first.output()
            assert "orchestrator changepassword admin" in first.output()
            assert "database upgraded: applied" in first.output()
            login = admin_login(first.base_url, password)
            assert login.status_code == 302 and login.headers["location"] == "/admin/"
            assert admin_login(first.base_url, "admin").status_code == 200  # no default password
            assert first.stop() == 0
        with start_server(home=tmp_path, database_url=database_url) as second:
            assert "password" not in second.output()
            assert "database up to date" in second.output()
            assert admin_login(second.base_url, password).status_code == 302
            assert second.stop() == 0


@sqlite_pass_only
def test_two_workers_serve_and_all_stop_on_sigterm(tmp_path: Path) -> None:
    """--workers N must really run N processes on the one port, and SIGTERM must leave none behind."""
    with start_server(home=tmp_path, args=["--workers", "2", "--access-log"]) as server:
        children = child_pids(server.process.pid)  # the Daphne workers and the services process
        workers = [pid for pid in children if "orchestrator.server worker" in command_line(pid)]
        assert len(workers) == 2
        with httpx.Client(base_url=server.base_url) as client:
            for _ in range(20):
                assert client.get("/api/health/", headers={"Connection": "close"}).status_code == 200
        assert "server started: 2 workers" in server.output()
        deadline = time.monotonic() + 5
        while "GET /api/health/" not in server.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "GET /api/health/" in server.output()  # --access-log prints requests
        assert server.stop(signal.SIGTERM) == 0
        assert not any(alive(pid) for pid in children)


@sqlite_pass_only
def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    """A SIGKILLed supervisor cannot clean up; its workers must notice and not hold the port forever."""
    with start_server(home=tmp_path) as server:
        workers = child_pids(server.process.pid)
        assert workers
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=5)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in workers)


@sqlite_pass_only
def test_an_ipv6_host_is_served_and_shown_as_a_url(tmp_path: Path) -> None:
    """`--host ::` listens on IPv6 and, on a dual-stack system, IPv4 too; URLs show the address in brackets."""
    with start_server(home=tmp_path, args=["--host", "::", "--no-services"]) as server:
        assert server.base_url.startswith("http://[::1]:"), server.output()
        port = server.base_url.rsplit(":", 1)[1]
        assert f"server started: 1 worker on [::]:{port}" in server.output()
        assert httpx.get(f"{server.base_url}/api/health/").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/api/health/").status_code == 200
        assert server.stop(signal.SIGINT) == 0


@sqlite_pass_only
def test_a_host_that_does_not_resolve_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    result = run_orchestrator(
        "server", "start", "--host", "no-such-host.invalid", "--port", "0", env=orchestrator_env(tmp_path)
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        next(line for line in result.stderr.splitlines() if "cannot resolve host 'no-such-host.invalid'" in line)
    ]

"""The live pages in a real browser (placeholder until the pages exist: the admin login and a screenshot)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import admin_password, login, screenshot
from tests.support.server import RunningServer

pytestmark = pytest.mark.e2e


def test_login_through_the_admin_form(page, orchestrator_server_process: RunningServer, tmp_path: Path) -> None:
    server = orchestrator_server_process
    with pytest.raises(AssertionError, match="refused"):
        login(page, server.base_url, "admin", "wrong")
    login(page, server.base_url, "admin", admin_password(server))
    assert page.url.endswith("/admin/")
    assert screenshot(page, "admin-index").stat().st_size > 1000

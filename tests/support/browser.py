"""A real browser for the UI tests: Playwright for Python driving Debian's Chromium (/usr/bin/chromium).

tests/conftest.py registers this module next to tests.support.server, so any test can ask for:

    @pytest.mark.e2e
    def test_dashboard(page, orchestrator_server_process):
        server = orchestrator_server_process
        login(page, server.base_url, "admin", admin_password(server))
        page.goto(f"{server.base_url}/ui/")
        screenshot(page, "dashboard")           # test-artifacts/dashboard.png

- `browser`: one Chromium shared by consecutive tests that use it. Playwright's own browser download cannot work
  here, so it launches the Debian package (`make browser` installs it). Without /usr/bin/chromium the tests that
  need it are skipped, except in CI (the CI variable set), where a missing browser fails them.
- `page`: a fresh context (1280x800, its own cookies) and page per test. On failure it saves a full-page
  screenshot as test-artifacts/<test name>.png; an uncaught JavaScript error on the page fails the test.
- `login(page, base_url, username, password)`: logs in through the admin's login form (the live pages share it).
- `admin_password(server)`: the password a server saved (and named the file of) on its first start.

Why the browser is stopped between tests that do not use it: Playwright's sync API runs an asyncio loop in a
greenlet of the main thread, and while it is started that loop counts as running for every other test in the
process (Django's ORM raises SynchronousOnlyOperation, asyncio.run() refuses to start). So the browser is shared
while tests that use it run back to back, and stopped before any other test runs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import RunningServer

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
DEFAULT_TIMEOUT_MS = 10_000  # a missing element fails in seconds, not after Playwright's 30 s
PASSWORD_LINE = re.compile(r"created the admin user: username (\S+); its password is in (\S+) ")


class _SharedBrowser:
    """Playwright and its Chromium, started on first use and stopped before a test that does not need them."""

    def __init__(self) -> None:
        self._playwright: Any = None
        self._browser: Any = None
        self.keep = False  # whether the next test uses the browser too (set before each teardown)

    def get(self) -> Any:
        if self._browser is None:
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
            try:
                self._browser = self._playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            except Exception:
                self.stop()
                raise
        return self._browser

    def stop(self) -> None:
        try:
            if self._browser is not None:
                self._browser.close()
        finally:
            self._browser = None
            if self._playwright is not None:
                self._playwright.stop()
                self._playwright = None


_shared = _SharedBrowser()


_FAILED = pytest.StashKey[bool]()


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """Remember whether a test's call failed, for the page fixture's screenshot."""
    if call.when == "call" and call.excinfo is not None and not call.excinfo.errisinstance(pytest.skip.Exception):
        item.stash[_FAILED] = True


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Before the test's fixtures are torn down: say whether the next test uses the browser too."""
    _shared.keep = nextitem is not None and _uses_shared_browser(nextitem)


def _uses_shared_browser(item: pytest.Item) -> bool:
    """Whether the test asks for this module's `browser` (tests/ui/test_run_pages.py has a `browser` of its own,
    a Django test client: keeping Chromium for it would leave Playwright's loop running under its ORM calls)."""
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {}).get("browser") or ()
    return any(getattr(definition.func, "__module__", None) == __name__ for definition in definitions[-1:])


def pytest_sessionfinish(session: pytest.Session) -> None:
    _shared.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    """The shared Chromium (a playwright.sync_api.Browser), stopped after the test unless the next one uses it.

    Stopped in this fixture's teardown, so before the module and session fixtures' (pytest-django's test database
    teardown needs the asyncio loop gone; and pytest-django runs the database tests first, so a browser test is
    often the session's last)."""
    if not CHROMIUM.exists():
        message = f"Debian's Chromium is not installed at {CHROMIUM} (`make browser` installs it)"
        if os.environ.get("CI"):
            pytest.fail(message + "; in CI the browser tests must run")
        pytest.skip(message)
    _shared.keep = False
    try:
        yield _shared.get()
    finally:
        if not _shared.keep:
            _shared.stop()


def artifact_path(name: str) -> Path:
    """test-artifacts/<name>.png, with the folder made (it is git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"


def screenshot(page: Any, name: str, *, full_page: bool = True, path: Path | None = None) -> Path:
    """Save a screenshot of `page` as test-artifacts/<name>.png (or at `path`) and return where it went."""
    target = path or artifact_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=full_page)
    return target


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A new page in its own context; screenshot on failure; an uncaught JavaScript error fails the test."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    new_page = context.new_page()
    errors: list[str] = []
    new_page.on("pageerror", lambda error: errors.append(f"{new_page.url}: {error}"))
    try:
        yield new_page
        if request.node.stash.get(_FAILED, False):
            print(f"screenshot of the failure: {screenshot(new_page, request.node.name)}")
        if errors and not request.node.stash.get(_FAILED, False):
            pytest.fail("uncaught JavaScript error on the page:\n" + "\n".join(errors))
    finally:
        context.close()


def admin_password(server: RunningServer) -> str:
    """The admin password `server start` saved when it created the admin user (its first start)."""
    match = PASSWORD_LINE.search(server.output())
    assert match, f"the server created no admin user (not its first start?):\n{server.output()}"
    return Path(match.group(2)).read_text().strip()


def login(page: Any, base_url: str, username: str, password: str) -> None:
    """Log in through the admin's login form; fails with the form's own message when it refuses."""
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.click("input[type=submit]")
    if "/admin/login/" in page.url:
        note = page.locator(".errornote")
        reason = note.inner_text().strip() if note.count() else "no message"
        raise AssertionError(f"login as {username!r} at {base_url} refused: {reason}")

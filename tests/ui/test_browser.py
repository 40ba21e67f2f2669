"""The live pages end to end, in a real browser: a real `server start` (2 workers, services on), a real process
worker, a deployed flow file, and Chromium doing what a user does. The one test the live UI issue asks for:
a run started from the Run form is watched through Scheduled -> Pending -> Running -> Completed without a reload,
its logs arrive live, its graph has its edges, the runs list filters by tag, and a long run is cancelled from its
page. It also measures how long a state change takes to reach an open page (printed; target < 250 ms p95)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.support.browser import ROOT, admin_password, login, screenshot
from tests.support.server import start_server, suite_database_url
from tests.workers.conftest import SERVER_SETTINGS, Cluster

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(180),  # a hang shows its stack after 3 minutes (the test takes 30-70 s on a loaded machine)
    # One CI pass is enough for the slowest test of the suite (about 40 s, most of it the server's start); the pages
    # behave the same on both databases, and tests/live runs the websocket publisher on PostgreSQL.
    pytest.mark.skipif(
        (suite_database_url() or "").startswith("postgres"),
        reason="the browser test runs in the SQLite pass only (slow; tests/live covers PostgreSQL's publisher)",
    ),
]

FLOW_FILE = textwrap.dedent(
    """
    import time

    from orchestrator import flow, get_run_logger, task


    @task
    def extract(n: int) -> list[int]:
        get_run_logger().info("extracting %s numbers", n)
        return list(range(n))


    @task
    def double(values: list[int]) -> list[int]:
        return [value * 2 for value in values]


    @task
    def total(doubled: list[int], original: list[int]) -> int:
        return sum(doubled) + sum(original)


    @flow
    def pipeline(n: int = 3, seconds: float = 1.5) -> int:
        logger = get_run_logger()
        logger.info("pipeline starts with n=%s", n)
        numbers = extract(n)
        time.sleep(seconds)
        doubled = double(numbers)
        result = total(doubled, numbers)
        logger.info("pipeline total is %s", result)
        return result


    if __name__ == "__main__":  # python pipeline.py POOL TAG: deploy it for the pool's workers
        import sys

        print(pipeline.deploy(name="browser", work_pool_name=sys.argv[1], tags=[sys.argv[2]])["id"])
    """
)

# Installed in every page before its own scripts: records each text [data-testid=run-state] shows (with the epoch
# time in ms of the change), the state it showed when a log line first appeared, and the page's websockets.
OBSERVER = """
(() => {
  const test = (window.__uiTest = {loadedAt: Date.now(), states: [], sockets: [], firstLog: null});
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      const entry = {url: String(args[0]), openedAt: null, closedAt: null};
      test.sockets.push(entry);
      this.addEventListener("open", () => { entry.openedAt = Date.now(); });
      this.addEventListener("close", () => { entry.closedAt = Date.now(); });
    }
  };
  const record = () => {
    const at = Date.now();
    const state = document.querySelector('[data-testid="run-state"]');
    const text = state ? state.textContent.trim() : null;
    if (text !== null && (!test.states.length || test.states[test.states.length - 1].text !== text)) {
      test.states.push({text, at});
    }
    const logs = document.querySelector('[data-testid="run-logs"]');
    if (!test.firstLog && logs && logs.textContent.includes("pipeline starts")) {
      test.firstLog = {at, state: text};
    }
  };
  document.addEventListener("DOMContentLoaded", () => {
    record();
    new MutationObserver(record).observe(document.body, {subtree: true, childList: true, characterData: true});
  });
})();
"""

TAG = f"browser-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The real server (`server start --workers 2`, services on), with a flow file on disk."""
    root = tmp_path_factory.mktemp("browser")
    flows_dir = root / "flows"
    flows_dir.mkdir()
    (flows_dir / "pipeline.py").write_text(FLOW_FILE)
    with start_server(home=root / "server", args=["--workers", "2"], settings=SERVER_SETTINGS) as server:
        cluster = Cluster(server, flows_dir, root)
        try:
            yield cluster
        finally:
            cluster.stop_workers()
            cluster.api.close()


def epoch_ms(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp() * 1000


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def observed(page: Any) -> dict:
    return page.evaluate("window.__uiTest")


def wait_for_state(page: Any, name: str, timeout_ms: float = 20_000) -> None:
    """Wait, without reloading, until the run page's state badge reads `name`."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    try:
        page.wait_for_function(
            "name => (document.querySelector('[data-testid=\"run-state\"]') || {}).textContent?.trim() === name",
            arg=name,
            timeout=timeout_ms,
        )
    except PlaywrightTimeoutError:
        timeline = page.locator('[data-testid="run-timeline"]').inner_text()
        raise AssertionError(
            f"{page.url} never showed {name!r}; what it showed: {observed(page)}; its timeline: {timeline!r}"
        ) from None


def wait_until_live(page: Any) -> None:
    """Wait until the page's websocket is open: every change committed from then on reaches the page."""
    page.wait_for_function("window.__uiTest.sockets.some(socket => socket.openedAt)")


def open_live(page: Any, url: str) -> None:
    page.goto(url)
    wait_until_live(page)


def test_a_run_started_from_the_ui_is_watched_live_to_the_end(cluster: Cluster, page: Any) -> None:
    """What a user of the control plane does, from the Run form to cancelling a stuck run, in one browser."""
    started = time.monotonic()

    def phase(name: str) -> None:
        print(f"{time.monotonic() - started:6.1f} s  {name}")

    base = cluster.server.base_url
    pool = cluster.pool(paused=True)  # held back until the run page watches
    worker = cluster.start_worker("--pool", pool, wait=False)  # starts while the flow is deployed
    deploying = subprocess.Popen(
        [sys.executable, "pipeline.py", pool, TAG],
        cwd=cluster.flows_dir,
        env=cluster.worker_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # deployed while the browser logs in
    page.add_init_script(OBSERVER)
    login(page, base, "admin", admin_password(cluster.server))
    output = deploying.communicate(timeout=60)[0]
    assert deploying.returncode == 0, output
    deployment = cluster.call("GET", f"deployments/{output.split()[-1]}/")
    phase("deployed, logged in")

    # The deployment page's Run form: a bad value is refused with the field named, a good one starts a run.
    page.goto(f"{base}/ui/deployments/{deployment['id']}/")
    page.fill("[name=parameters-n]", "2.5")  # not an integer
    with page.expect_navigation():
        page.click("[data-testid=run-submit]")
    assert page.locator("[data-testid=parameter-n] .errorlist").count() == 1, "no field error for n=2.5"
    page.fill("[name=parameters-n]", "4")
    page.fill("[name=run-tags]", "from-the-form")
    with page.expect_navigation(url="**/ui/flow-runs/*/"):
        page.click("[data-testid=run-submit]")
    wait_until_live(page)
    run_id = page.url.rstrip("/").rsplit("/", 1)[1]
    run = cluster.run(run_id)
    assert (run["parameters"], sorted(run["tags"])) == ({"n": 4, "seconds": 1.5}, sorted([TAG, "from-the-form"]))

    phase("run created from the form")
    # The worker runs it; the page follows without a reload.
    loaded_at = observed(page)["loadedAt"]
    worker.wait_for_output("started")
    cluster.call("PATCH", f"work_pools/{pool}/", json={"paused": False})
    wait_for_state(page, "Completed")
    seen = observed(page)
    assert seen["loadedAt"] == loaded_at, "the run page was reloaded"
    history = {state["name"]: state["timestamp"] for state in cluster.states(run_id)}
    shown = [state["text"] for state in seen["states"]]
    assert shown == ["Scheduled", "Pending", "Running", "Completed"], f"page: {seen}\nAPI: {history}"
    assert seen["firstLog"] and seen["firstLog"]["state"] == "Running", seen["firstLog"]  # logs came live
    logs = page.locator('[data-testid="run-logs"]').inner_text()
    assert "pipeline starts with n=4" in logs and "pipeline total is 18" in logs, logs
    # Latency of each transition: from the engine's state timestamp to the page's change (the same clock).
    latencies = {
        f"worker {state['text']}": state["at"] - epoch_ms(history[state["text"]]) for state in seen["states"][1:]
    }

    phase("run completed")
    # The graph: three task runs and their three upstream edges, drawn by the server.
    page.reload()
    graph = page.locator('[data-testid="run-graph"]')
    assert graph.locator(".edge").count() == 3, graph.inner_html()
    for task in ("extract", "double", "total"):
        assert task in graph.inner_text()
    assert page.locator('[data-testid="task-runs"]').inner_text().count("Completed") >= 3
    screenshot(page, "ui-run-page")
    if os.environ.get("UPDATE_SCREENSHOTS"):  # the README's picture, refreshed on request only (it is committed)
        screenshot(page, "ui-run-page", path=ROOT / "docs" / "ui-run-page.png")

    phase("graph checked")
    # State changes made through the API, timed from its 2xx answer to the page's change. The first one comes
    # right after the socket opens, while the page still re-reads its parts: an answer read before the change
    # must not take the page back to the older state.
    flow_id = cluster.run(run_id)["flow"]
    for _ in range(3):
        manual = cluster.call(
            "POST", "flow_runs/", json={"flow": flow_id, "tags": ["manual"], "state": {"type": "SCHEDULED"}}
        )
        open_live(page, f"{base}/ui/flow-runs/{manual['id']}/")
        for state_type, name in (("PENDING", "Pending"), ("RUNNING", "Running"), ("COMPLETED", "Completed")):
            answer = cluster.call("POST", f"flow_runs/{manual['id']}/set_state/", json={"state": {"type": state_type}})
            answered = time.time() * 1000
            assert answer["status"] == "ACCEPT", answer
            wait_for_state(page, name, timeout_ms=5_000)
            shown = next(state["at"] for state in observed(page)["states"] if state["text"] == name)
            latencies[f"api {manual['id'][:8]} {name}"] = shown - answered
        steps = [state["text"] for state in observed(page)["states"]]
        assert steps == ["Scheduled", "Pending", "Running", "Completed"], steps  # never back to an older state

    phase("API transitions timed")
    # The runs list filtered by tag shows the deployment's runs and not the others; a new run with the tag appears
    # in it live, at the top.
    open_live(page, f"{base}/ui/flow-runs/")
    rows = page.locator('[data-testid="flow-run-row"]')
    assert manual["id"] in {rows.nth(index).get_attribute("data-id") for index in range(rows.count())}
    page.fill("input[name=tag]", TAG)
    with page.expect_navigation():
        page.click("input[type=submit][value=Filter]")
    wait_until_live(page)
    assert {rows.nth(index).get_attribute("data-id") for index in range(rows.count())} == {run_id}
    long_run = cluster.create_run(deployment["id"], seconds=60)
    page.wait_for_selector(f'[data-testid="flow-run-row"][data-id="{long_run["id"]}"]')
    assert rows.first.get_attribute("data-id") == long_run["id"]
    screenshot(page, "runs-filtered-by-tag")

    phase("list filtered")
    # The long run, cancelled from its page, ends Cancelled (its page follows the worker's answer live).
    open_live(page, f"{base}/ui/flow-runs/{long_run['id']}/")
    wait_for_state(page, "Running")
    with page.expect_navigation():
        page.click("[data-testid=cancel-button]")
    wait_until_live(page)
    wait_for_state(page, "Cancelled", timeout_ms=15_000)
    assert cluster.run(long_run["id"])["state_name"] == "Cancelled"
    cancelled = next(state for state in cluster.states(long_run["id"]) if state["name"] == "Cancelled")
    seen = observed(page)
    if seen["sockets"][0]["openedAt"] < epoch_ms(cancelled["timestamp"]):  # else the page's load showed it
        shown = next(state["at"] for state in seen["states"] if state["text"] == "Cancelled")
        latencies["worker Cancelled"] = shown - epoch_ms(cancelled["timestamp"])
    screenshot(page, "run-page-cancelled")

    phase("cancelled")
    values = list(latencies.values())
    p95 = percentile(values, 0.95)
    print(
        f"\nstate change to page: p50 {percentile(values, 0.5):.0f} ms, p95 {p95:.0f} ms, max {max(values):.0f} ms "
        f"over {len(values)} transitions; {json.dumps({k: round(v) for k, v in latencies.items()})}"
    )
    print(f"browser test took {time.monotonic() - started:.1f} s")
    assert p95 < 1000, latencies  # the target is 250 ms; a shared CI machine gets headroom before it fails


def test_the_run_page_says_why_its_run_waits_and_follows_the_change_live(cluster: Cluster, page: Any) -> None:
    """A run in a paused pool: the page names the pause; resuming the pool (no message for the run) drops that
    reason within the panel's refresh, and the run starting (a state message) closes the panel, without a reload."""
    base = cluster.server.base_url
    pool = cluster.pool(paused=True)
    deployment = cluster.deployment(pool, "pipeline.py:pipeline")
    run = cluster.create_run(deployment)
    login(page, base, "admin", admin_password(cluster.server))
    page.goto(f"{base}/ui/flow-runs/{run['id']}/")
    page.evaluate("window.__loadMarker = 1")
    panel = page.locator("[data-testid=run-waiting]")
    assert panel.locator("h3").inner_text() == "Why is this run waiting?"
    paused = panel.locator("li[data-code=pool_paused]")
    assert f"work pool '{pool}' is paused" in paused.inner_text()
    assert panel.locator("li[data-code=no_online_worker]").count() == 1

    cluster.call("PATCH", f"work_pools/{pool}/", json={"paused": False})
    paused.wait_for(state="detached")
    assert panel.locator("li[data-code=no_online_worker]").count() == 1
    assert panel.locator("li[data-code=queue_position]").inner_text().startswith("it is next in line")

    for state in ("PENDING", "RUNNING"):
        cluster.call("POST", f"flow_runs/{run['id']}/set_state/", json={"state": {"type": state}})
    panel.wait_for(state="detached")
    assert page.evaluate("window.__loadMarker") == 1  # no reload
    cluster.call("POST", f"flow_runs/{run['id']}/set_state/", json={"state": {"type": "CANCELLED"}, "force": True})

"""Server time of the admin's changelists and the live pages against a database seeded by ui_seed.py.

Each page is requested `--requests` times (after two warm-up requests) through Django's in-process test client as
a logged-in staff user, so the figure is the server's time to answer (middleware, views, queries, templates),
without a network or a browser. Prints p50 / p95 of the wall-clock time, and of this thread's CPU time (on a
machine shared with other work, the CPU time is the figure that does not depend on the load; on SQLite it
includes the database's work, on PostgreSQL the server's share is not in it), the number of queries of one
request, and the target (300 ms p95; 500 ms for the pages of the run with 10,000 task runs and 100,000 lines).

    .venv/bin/python benchmarks/ui_seed.py --database sqlite           # once: about 10 minutes
    .venv/bin/python benchmarks/ui_pages.py --database sqlite [--requests 30] [--page /ui/some/page/ ...]

Paths may name `{big_run}`, `{flow}` and `{deployment}` (the seeded big run, a flow's and a deployment's id) and
`{flow_name}`; a default page whose URL the project does not have (yet) is skipped and said so.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import percentiles  # noqa: E402
from ui_seed import BIG_RUN_NAME, DEFAULT_HOME, database_url, setup_django  # noqa: E402

TARGET_MS = 300.0
BIG_RUN_TARGET_MS = 500.0

ADMIN_PAGES = [
    "/admin/runs/flowrun/",
    "/admin/runs/flowrun/?state_type__exact=FAILED",
    "/admin/runs/flowrun/?state_name=Late",
    "/admin/runs/flowrun/?work_pool_name=gpu",
    "/admin/runs/flowrun/?created__gte={week_ago}",
    "/admin/runs/flowrun/?q=gentle-otter",
    "/admin/runs/flowrun/?q={big_run}",
    "/admin/runs/flowrun/{big_run}/change/",
    "/admin/runs/taskrun/",
    "/admin/runs/taskrun/?state_type__exact=FAILED",
    "/admin/logs/log/",
    "/admin/logs/log/?level=40",
    "/admin/events/event/",
]
UI_PAGES = [
    "/ui/",
    "/ui/flow-runs/",
    "/ui/flow-runs/?state=FAILED",
    "/ui/flow-runs/?state=Late",
    "/ui/flow-runs/?state=FAILED&state=CRASHED",
    "/ui/flow-runs/?tag=ml",
    "/ui/flow-runs/?tag=ml,critical",
    "/ui/flow-runs/?flow={flow}",
    "/ui/flow-runs/?deployment={deployment}",
    "/ui/flow-runs/?work_pool=gpu",
    "/ui/flow-runs/?name=gentle-otter",
    "/ui/flow-runs/?name=zebra",
    "/ui/flow-runs/?recent=24h",
    "/ui/flow-runs/?state=FAILED&tag=ml&flow={flow}",
    "/ui/flows/",
    "/ui/deployments/",
    "/ui/deployments/{deployment}/",
    "/ui/work-pools/",
    "/ui/flow-runs/{big_run}/",
    "/ui/flow-runs/{big_run}/?log_level=40",
    "/ui/flow-runs/{big_run}/part/task-runs/",
    "/ui/flow-runs/{big_run}/part/graph/",
    "/ui/flow-runs/{big_run}/part/logs/",
]


def placeholders() -> dict[str, str]:
    from datetime import timedelta

    from django.utils import timezone

    from apps.deployments.models import Deployment
    from apps.flows.models import Flow
    from apps.runs.models import FlowRun

    big_run = FlowRun.objects.filter(name=BIG_RUN_NAME).values_list("id", flat=True).first()
    if big_run is None:
        sys.exit("no seeded big run: run benchmarks/ui_seed.py first")
    flow = Flow.objects.get(name="flow-07")
    return {
        "big_run": str(big_run),
        "flow": str(flow.id),
        "flow_name": flow.name,
        "deployment": str(Deployment.objects.filter(flow=flow).order_by("name").first().id),
        "week_ago": (timezone.now() - timedelta(days=7)).replace(microsecond=0).isoformat().replace("+", "%2B"),
    }


def exists(path: str) -> bool:
    from django.urls import Resolver404, resolve

    try:
        resolve(path.split("?", 1)[0])
    except Resolver404:
        return False
    return True


class QueryLog:
    """The queries of one request, with their times (a database execute wrapper: works with DEBUG off)."""

    def __init__(self) -> None:
        self.queries: list[tuple[float, str]] = []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.queries.append((time.perf_counter() - started, sql))


def measure(client, path: str, requests: int, show_queries: bool) -> tuple[list[float], list[float], int, int]:
    from django.db import connection

    for _ in range(2):
        client.get(path)
    log = QueryLog()
    with connection.execute_wrapper(log):
        status = client.get(path).status_code
    if show_queries:
        for seconds, sql in log.queries:
            print(f"    {seconds * 1000:7.1f} ms  {sql[:300]}")
    samples, cpu = [], []
    for _ in range(requests):
        started, cpu_started = time.perf_counter(), time.thread_time()
        client.get(path)
        samples.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - cpu_started)
    return samples, cpu, status, len(log.queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--home", default=DEFAULT_HOME)
    parser.add_argument("--database-url", help="another database than the default one of --database")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--page", action="append", default=[], help="a path to measure (instead of the defaults)")
    parser.add_argument("--queries", action="store_true", help="print each page's queries and their times")
    parser.add_argument("--only", help="measure only the default pages whose path contains this")
    options = parser.parse_args()
    url = database_url(options.database, options.home, options.database_url)
    if options.database == "sqlite" and not Path(url.removeprefix("sqlite:///")).exists():
        sys.exit(f"{url} does not exist: run benchmarks/ui_seed.py --database sqlite first")
    setup_django(options.database, options.home, url)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from apps.runs.models import FlowRun

    started = time.perf_counter()
    call_command("migrate", verbosity=0)  # the indexes of this checkout
    print(f"migrated in {time.perf_counter() - started:.1f} s")

    user, _ = get_user_model().objects.get_or_create(
        username="ui-bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    values = placeholders()
    pages = options.page or [page for page in ADMIN_PAGES + UI_PAGES if not options.only or options.only in page]
    runs = FlowRun.objects.order_by("-created").values_list("created", flat=True).first()
    print(f"{connection.vendor}: {url} (newest run {runs:%Y-%m-%d %H:%M}), {options.requests} requests per page")
    print(f"load average {' '.join(f'{value:.1f}' for value in os.getloadavg())} on {os.cpu_count()} cores")
    print(
        f"{'page':62} {'status':>6} {'queries':>7} {'p50 ms':>8} {'p95 ms':>8} {'cpu p50':>8} {'cpu p95':>8}"
        f" {'target':>7}"
    )
    for page in pages:
        path = page.format(**values)
        label = page if len(page) <= 62 else page[:59] + "..."
        if not exists(path):
            print(f"{label:62} {'(no such page yet: skipped)':>40}")
            continue
        target = (
            BIG_RUN_TARGET_MS
            if page.startswith(("/ui/flow-runs/{big_run}", "/admin/runs/flowrun/{big_run}"))
            else TARGET_MS
        )
        samples, cpu, status, queries = measure(client, path, options.requests, options.queries)
        figures, cpu_figures = percentiles(samples), percentiles(cpu)
        verdict = "ok" if figures["p95"] <= target and status == 200 else "SLOW" if status == 200 else "ERROR"
        print(
            f"{label:62} {status:>6} {queries:>7} {figures['p50']:8.1f} {figures['p95']:8.1f}"
            f" {cpu_figures['p50']:8.1f} {cpu_figures['p95']:8.1f} {target:7.0f} {verdict}",
            flush=True,
        )


if __name__ == "__main__":
    main()

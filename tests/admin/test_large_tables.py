"""The admin's changelists of the tables that grow to millions of rows (runs, task runs, logs, events) stay fast:
no COUNT of a whole table, no query per row, filter choices and searches read indexes, and every filter is
served by an index in the list's newest-first order (docs/ui.md, "Scale")."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.admin import LargeTablePaginator, indexed_distinct_values
from apps.flows.services import flow_get_or_create
from apps.logs.services import logs_create
from apps.runs import services
from apps.runs.models import FlowRun
from orchestrator.states import Scheduled

pytestmark = pytest.mark.django_db

NAMES = ["etl-nightly-1", "etl-nightly-2", "Etl-other", "my-etl-job", "report_1%", "reportX1y", "gentle-otter"]


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create(username="admin", is_staff=True, is_superuser=True))
    return client


def make_runs(count: int, prefix: str = "") -> list[FlowRun]:
    flow, _ = flow_get_or_create(name="scale")
    runs = []
    for index in range(count):
        extra = {"state": Scheduled(), "work_pool_name": "gpu"} if index % 2 else {}
        runs.append(services.flow_run_create(flow=flow, name=prefix + NAMES[index % len(NAMES)], **extra)[0])
    for run in runs[:2]:
        for key in ("extract", "load"):
            task_run = services.task_run_create(flow_run=run, task_key=key)[0]
            logs_create(entries=[{"flow_run": run, "task_run": task_run, "message": "hello", "level": 20}])
    return runs


def page_queries(admin_client, url: str) -> tuple[str, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        page = admin_client.get(url)
    assert page.status_code == 200, url
    return page.content.decode(), [query["sql"] for query in captured.captured_queries]


CHANGELISTS = [
    "/admin/runs/flowrun/",
    "/admin/runs/flowrun/?state_type__exact=SCHEDULED",
    "/admin/runs/flowrun/?state_name=Pending",
    "/admin/runs/flowrun/?work_pool_name=gpu",
    "/admin/runs/flowrun/?created__gte=2020-01-01+00%3A00%3A00%2B00%3A00",
    "/admin/runs/flowrun/?q=etl-",
    "/admin/runs/taskrun/",
    "/admin/runs/taskrun/?state_type__exact=PENDING",
    "/admin/logs/log/",
    "/admin/logs/log/?level=20",
    "/admin/events/event/",
    "/admin/events/event/?resource_type=flow_run",
]


def test_changelists_count_at_most_a_capped_number_of_rows_and_run_no_query_per_row(admin_client, monkeypatch):
    """A COUNT(*) or a SELECT DISTINCT over a million rows takes seconds; so would a query per row shown."""
    monkeypatch.setattr(LargeTablePaginator, "count_limit", 5)
    make_runs(12)
    before = {}
    for url in CHANGELISTS:
        text, queries = page_queries(admin_client, url)
        before[url] = len(queries)
        for sql in queries:
            assert "DISTINCT" not in sql.upper(), (url, sql)
            if "COUNT(" in sql.upper():
                assert "LIMIT 6" in sql, (url, sql)  # count_limit + 1: "more than 5"
    text, _ = page_queries(admin_client, "/admin/runs/flowrun/")
    assert "many flow runs (" in text
    assert "12 flow runs" not in text

    make_runs(12, prefix="more-")
    for url in CHANGELISTS:
        assert len(page_queries(admin_client, url)[1]) == before[url], url


def test_a_short_list_shows_its_exact_count_and_the_filters_list_every_value(admin_client):
    make_runs(3)
    text, _ = page_queries(admin_client, "/admin/runs/flowrun/?work_pool_name=gpu")
    assert "1 flow run" in text and "many" not in text
    assert indexed_distinct_values(FlowRun.objects.all(), "work_pool_name") == ["gpu"]
    assert indexed_distinct_values(FlowRun.objects.all(), "state_name") == ["Pending", "Scheduled"]
    text, _ = page_queries(admin_client, "/admin/runs/flowrun/")
    assert "?work_pool_name=gpu" in text and "?work_pool_name__isnull=True" in text
    assert "?state_name=Scheduled" in text and "?state_name=Pending" in text


def test_search_matches_an_id_or_the_start_of_a_name(admin_client):
    """The admin's substring search reads every row; an id or a name's start reads an index."""
    runs = make_runs(7)
    every_run = list(FlowRun.objects.all())

    def found(url: str) -> set[str]:
        text = page_queries(admin_client, url)[0]
        return {run.name for run in every_run if f"/admin/runs/flowrun/{run.pk}/change/" in text}

    assert found("/admin/runs/flowrun/?q=etl-") == {"etl-nightly-1", "etl-nightly-2"}
    assert found("/admin/runs/flowrun/?q=report_1%25") == {"report_1%"}  # LIKE's wildcards are plain characters
    assert found(f"/admin/runs/flowrun/?q={runs[3].pk}") == {"my-etl-job"}
    assert found("/admin/runs/flowrun/?q=otter") == set()
    task_runs = page_queries(admin_client, f"/admin/runs/taskrun/?q={runs[0].pk}")[0]
    assert task_runs.count("/change/") >= 2 and "many" not in task_runs
    logs = page_queries(admin_client, f"/admin/logs/log/?q={runs[1].pk}")[0]
    assert "2 logs" in logs


# (changelist, the index its page query must read, whether that index also gives the order)
INDEXED = [
    ("/admin/runs/flowrun/", "flow_run_created", True),
    ("/admin/runs/flowrun/?state_type__exact=SCHEDULED", "flow_run_state_type_created", True),
    ("/admin/runs/flowrun/?state_name=Pending", "flow_run_state_name_created", True),
    ("/admin/runs/flowrun/?work_pool_name=gpu", "flow_run_pool_created", True),
    ("/admin/runs/flowrun/?created__gte=2020-01-01+00%3A00%3A00%2B00%3A00", "flow_run_created", True),
    ("/admin/runs/flowrun/?q=etl-", "flow_run_name", False),
    ("/admin/runs/taskrun/?state_name=Pending", "task_run_state_name_created", True),
    ("/admin/logs/log/", "log_time_id", True),
    ("/admin/logs/log/?level=20", "log_level_time", True),
    ("/admin/events/event/?name=flow_run.state_changed", "events_event_name", True),
    ("/admin/events/event/?resource_type=flow_run", "events_event_resource_type", True),
]


def test_each_filter_reads_its_index_in_the_lists_order(admin_client):
    """EXPLAIN of each page's own query. The tables here are small, so PostgreSQL is told to avoid a sequential
    scan and a sort when it can: what is checked is that the index can serve the filter (and the order)."""
    make_runs(4)
    for url, index, ordered in INDEXED:
        check_plan(admin_client, url, index, ordered)


def check_plan(admin_client, url: str, index: str, ordered: bool, table: str = "") -> None:
    """The page's query of `table` (by default the admin changelist's) reads `index`; with `ordered`, with no
    sort step. PostgreSQL-only indexes end in _pattern or _trigram."""
    table = table or {"runs/flowrun": "runs_flowrun", "runs/taskrun": "runs_taskrun", "logs/log": "logs_log"}.get(
        url.split("/")[2] + "/" + url.split("/")[3], "events_event"
    )
    _, queries = page_queries(admin_client, url)
    [sql] = [sql for sql in queries if f'FROM "{table}"' in sql and "ORDER BY" in sql]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"SET LOCAL enable_sort = {'off' if ordered else 'on'}")
            if index.endswith("_trigram"):  # a bitmap scan of it, not a walk of the order's index
                cursor.execute("SET LOCAL enable_indexscan = off")
            cursor.execute(f"EXPLAIN {sql}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            sorted_ = "Sort" in plan
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
            plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
            sorted_ = "TEMP B-TREE FOR ORDER BY" in plan
    expected = f"{index}_pattern" if index == "flow_run_name" and connection.vendor == "postgresql" else index
    assert f"{expected} " in plan + " " or f"{expected}\n" in plan + "\n", (url, plan)
    if ordered:
        assert not sorted_, (url, plan)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the planner's estimate is PostgreSQL's")
def test_an_unfiltered_list_on_postgresql_shows_the_planners_estimate_without_counting(admin_client, monkeypatch):
    monkeypatch.setattr(LargeTablePaginator, "count_limit", 5)
    make_runs(12)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE runs_flowrun")  # what autovacuum keeps up to date
    text, queries = page_queries(admin_client, "/admin/runs/flowrun/")
    assert "many flow runs (about 12)" in text
    assert not [sql for sql in queries if "COUNT(" in sql.upper()]
    text, queries = page_queries(admin_client, "/admin/runs/flowrun/?work_pool_name=gpu")
    assert "many flow runs (more than 5)" in text  # a filtered list counts, up to the limit
    assert [sql for sql in queries if "COUNT(" in sql.upper() and "LIMIT 6" in sql]

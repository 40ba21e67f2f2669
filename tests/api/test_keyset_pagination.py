"""Keyset pagination: a client walking `next` links sees every row exactly once, even while rows are created,
whatever the order (nullable sort keys and ties included), and `previous` walks back the same pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.flows.services import flow_get_or_create
from apps.runs import services
from orchestrator.states import Scheduled
from tests.api.support import assert_error


@pytest.fixture
def flow(db):
    return flow_get_or_create(name="paged")[0]


def _create(flow, name: str, **extra):
    return services.flow_run_create(flow=flow, name=name, **extra)[0]


def _walk(api, url: str, on_page=None) -> list[dict]:
    rows, pages = [], 0
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        rows.extend(body["results"])
        pages += 1
        if on_page:
            on_page(pages)
        url = body["next"]
    return rows


def test_runs_created_while_paging_neither_repeat_nor_hide_rows(api, flow):
    """Newest first, 25 runs, pages of 4; five new runs arrive between pages: the 25 are each seen once."""
    existing = [_create(flow, f"run-{index:02d}") for index in range(25)]

    def create_more(page: int) -> None:
        _create(flow, f"new-after-page-{page}")

    rows = _walk(api, "/api/flow_runs/?limit=4&flow_name=paged", on_page=lambda page: page <= 5 and create_more(page))
    seen = [row["id"] for row in rows]
    assert len(seen) == len(set(seen)), "a row was repeated"
    assert {str(run.id) for run in existing} <= set(seen), "a row was skipped"
    assert [row["name"] for row in rows if row["name"].startswith("run-")] == [
        f"run-{index:02d}" for index in reversed(range(25))
    ]


@pytest.mark.parametrize("ordering", ["expected_start_time", "-expected_start_time", "name", "-name", "start_time"])
def test_every_row_once_for_nullable_keys_and_ties(api, flow, ordering):
    """Runs with no expected start (null) and runs sharing a name are each listed once, in a stable order."""
    now = timezone.now()
    for index in range(7):
        _create(flow, "same-name", state=Scheduled(scheduled_time=now + timedelta(minutes=index % 3)))
    for index in range(6):
        run = _create(flow, f"other-{index}")
        run.expected_start_time = None  # as a run created with no state time may be
        run.save(update_fields=["expected_start_time"])
    everything = api.get(f"/api/flow_runs/?flow_name=paged&ordering={ordering}&limit=1000").json()["results"]
    rows = _walk(api, f"/api/flow_runs/?flow_name=paged&ordering={ordering}&limit=3")
    assert [row["id"] for row in rows] == [row["id"] for row in everything]
    assert len({row["id"] for row in rows}) == 13


def test_previous_links_walk_back_through_the_same_pages(api, flow):
    """From the last page, `previous` gives the earlier pages again, in order."""
    for index in range(10):
        _create(flow, f"run-{index}")
    pages, url = [], "/api/flow_runs/?flow_name=paged&limit=3"
    while url:
        body = api.get(url).json()
        pages.append([row["id"] for row in body["results"]])
        last, url = body, body["next"]
    backward, url = [], last["previous"]
    while url:
        body = api.get(url).json()
        backward.append([row["id"] for row in body["results"]])
        url = body["previous"]
    assert backward == list(reversed(pages[:-1]))


def test_an_offset_jump_continues_with_cursors(api, flow):
    """`?offset=` still starts further in; its `next` link carries a cursor, not a larger offset."""
    for index in range(6):
        _create(flow, f"run-{index}")
    body = api.get("/api/flow_runs/?flow_name=paged&limit=2&offset=2").json()
    assert [row["name"] for row in body["results"]] == ["run-3", "run-2"]
    assert "cursor=" in body["next"] and "offset=" not in body["next"]
    assert [row["name"] for row in api.get(body["next"]).json()["results"]] == ["run-1", "run-0"]


@pytest.mark.parametrize("cursor", ["garbage", "eyJ2IjpbMV0sImQiOiJuIn0", "eyJ2IjpbIngiLCJ5Il0sImQiOiJxIn0", "%00"])
def test_a_malformed_cursor_is_a_400_naming_it(api, flow, cursor):
    """A hand-edited cursor is refused clearly, not a 500 and not a silent first page."""
    _create(flow, "run")
    assert_error(api.get(f"/api/flow_runs/?cursor={cursor}"), 400, field="cursor")


def test_cursor_and_offset_together_are_refused(api, flow):
    _create(flow, "a")
    _create(flow, "b")
    next_link = api.get("/api/flow_runs/?limit=1").json()["next"]
    assert_error(api.get(next_link + "&offset=3"), 400, field="offset")

"""Hostile input on every work pool endpoint that takes a body, and on names in their URLs: each answer is a JSON
4xx naming the field, never a 500, and a refused request writes nothing (pools, queues, workers, runs)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import connection

from apps.work_pools.models import Worker, WorkPool, WorkQueue
from apps.work_pools.services import work_pool_create
from tests.api import support
from tests.api.test_hostile_input import MALFORMED, NAME_BAD, NOT_AN_OBJECT, TIME_BAD, UNSTORABLE, int_bad, set_path

BOOL_BAD = ["maybe", 5, [], {}, None]
TEXT_BAD = ["x" * 20_001, [], {}, True, 12345678]
LIMIT_BAD = ["ten", 1.5, True, [], {}, -1, 1_000_001]


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    body: dict[str, Any]
    free: str  # a string field where parser-level hostile values go
    bad: dict[str, list[Any]] = field(default_factory=dict)


ENDPOINTS = [
    Endpoint(
        "pool-create",
        "POST",
        "/api/work_pools/",
        {"name": "new-pool", "type": "process", "concurrency_limit": 2, "paused": False, "description": "d"},
        free="description",
        bad={
            "name": NAME_BAD,
            "type": ["kubernetes", "", None, 5, [], {}],
            "concurrency_limit": LIMIT_BAD,
            "paused": BOOL_BAD,
            "description": TEXT_BAD,
            "id": ["x"],
            "worker_command": ["rm -rf /"],
        },
    ),
    Endpoint(
        "pool-update",
        "PATCH",
        "/api/work_pools/local/",
        {"concurrency_limit": 3, "paused": True, "description": "d"},
        free="description",
        bad={
            "concurrency_limit": LIMIT_BAD,
            "paused": BOOL_BAD,
            "description": TEXT_BAD,
            "name": ["renamed"],
            "type": ["celery"],
        },
    ),
    Endpoint(
        "queue-create",
        "POST",
        "/api/work_pools/local/queues/",
        {"name": "high", "priority": 2, "concurrency_limit": 1, "paused": False, "description": "d"},
        free="description",
        bad={
            "name": NAME_BAD,
            "priority": [*int_bad(1, 1_000_000), 0],
            "concurrency_limit": LIMIT_BAD,
            "paused": BOOL_BAD,
            "description": TEXT_BAD,
            "pool": ["other"],
        },
    ),
    Endpoint(
        "queue-update",
        "PATCH",
        "/api/work_pools/local/queues/default/",
        {"priority": 3, "concurrency_limit": None, "paused": True},
        free="description",
        bad={
            "priority": [*int_bad(1, 1_000_000), 0],
            "concurrency_limit": LIMIT_BAD,
            "paused": BOOL_BAD,
            "description": TEXT_BAD,
            "name": ["renamed"],
        },
    ),
    Endpoint(
        "poll",
        "POST",
        "/api/work_pools/local/get_scheduled_flow_runs/",
        {"work_queue_names": ["default"], "scheduled_before": "2030-01-01T00:00:00Z", "limit": 5, "worker_name": "w"},
        free="worker_name",
        bad={
            "work_queue_names": ["default", 5, {}, [None], [""], ["a/b"], [["x"]], [f"q{i}" for i in range(101)]],
            "scheduled_before": [t for t in TIME_BAD if t != ""],
            "limit": int_bad(1, 1_000),
            "worker_name": [n for n in NAME_BAD if n is not None],
            "name": ["w"],
        },
    ),
    Endpoint(
        "heartbeat",
        "POST",
        "/api/work_pools/local/workers/heartbeat/",
        {"name": "w", "flow_run_ids": ["0b7e8f5c-1d7e-4c8a-9d0e-3f1a2b3c4d5e"]},
        free="name",
        bad={
            "name": NAME_BAD,
            "flow_run_ids": ["x", 5, {}, ["not-a-uuid"], [5], [None], [True], [[]], ["0" * 40]],
            "worker_name": ["w"],
        },
    ),
]


def snapshot() -> list[tuple]:
    """The API suite's snapshot plus the work pool tables."""
    query = " UNION ALL ".join(
        f"SELECT '{model._meta.db_table}', COUNT(*), MAX(updated) FROM {model._meta.db_table}"
        for model in (WorkPool, WorkQueue, Worker)
    )
    with connection.cursor() as cursor:
        cursor.execute(query)
        return support.snapshot() + sorted(cursor.fetchall())


@pytest.fixture
def pool(db) -> WorkPool:
    return work_pool_create(name="local")


def send(api, endpoint: Endpoint, data, content_type: str = "application/json"):
    return api.generic(endpoint.method, endpoint.path, data, content_type=content_type)


def field_cases() -> list:
    return [
        pytest.param(endpoint, path, value, id=f"{endpoint.name}-{path}-{index}")
        for endpoint in ENDPOINTS
        for path, values in endpoint.bad.items()
        for index, value in enumerate(values)
    ]


@pytest.mark.parametrize(("endpoint", "path", "value"), field_cases())
def test_a_wrong_value_for_a_field_is_a_400_naming_it(api, pool, endpoint, path, value):
    """Wrong types, out-of-range values, malformed names and fields that cannot be set are refused by name."""
    before = snapshot()
    response = send(api, endpoint, json.dumps(set_path(endpoint.body, path, value)))
    support.assert_error(response, 400, code="invalid_input", field=path)
    assert snapshot() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_the_valid_body_used_by_these_tests_is_accepted(api, pool, endpoint):
    """The matrix starts from a body the endpoint accepts, so each refusal is caused by the one bad value."""
    response = send(api, endpoint, json.dumps(endpoint.body))
    assert response.status_code in (200, 201), response.content
    support.assert_json(response)


@pytest.mark.parametrize("raw", MALFORMED, ids=[f"malformed-{index}" for index in range(len(MALFORMED))])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_malformed_json_is_a_400(api, pool, endpoint, raw):
    before = snapshot()
    support.assert_error(send(api, endpoint, raw), 400)
    assert snapshot() == before


@pytest.mark.parametrize("raw", NOT_AN_OBJECT, ids=[raw.decode() for raw in NOT_AN_OBJECT])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_a_body_that_is_not_an_object_is_a_400(api, pool, endpoint, raw):
    before = snapshot()
    support.assert_error(send(api, endpoint, raw), 400, code="invalid_input")
    assert snapshot() == before


@pytest.mark.parametrize("raw", UNSTORABLE.values(), ids=UNSTORABLE.keys())
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_values_no_database_can_store_are_a_400(api, pool, endpoint, raw):
    """NUL, lone surrogates, NaN and overflowing numbers are refused before they reach a column."""
    before = snapshot()
    text = json.dumps(set_path(endpoint.body, endpoint.free, "__HOSTILE__")).replace('"__HOSTILE__"', raw)
    support.assert_error(send(api, endpoint, text), 400, code="invalid_input")
    assert snapshot() == before


def test_a_form_post_is_a_415(api, pool):
    before = snapshot()
    response = api.post("/api/work_pools/", "name=x", content_type="application/x-www-form-urlencoded")
    support.assert_error(response, 415, code="unsupported_media_type")
    assert snapshot() == before


BAD_NAMES = {
    "unknown": "nope",
    "nul": "%00",
    "control": "a%01b",
    "emoji": "%F0%9F%93%8A",
    "sql": "1%27%20OR%20%271%27=%271",
    "traversal": "..%2F..%2Fadmin",
    "very-long": "a" * 5_000,
    "bad-utf8": "%FF%FE",
}
NAMED_ROUTES = [
    ("GET", "/api/work_pools/{}/"),
    ("PATCH", "/api/work_pools/{}/"),
    ("DELETE", "/api/work_pools/{}/"),
    ("GET", "/api/work_pools/{}/queues/"),
    ("POST", "/api/work_pools/{}/queues/"),
    ("GET", "/api/work_pools/{}/workers/"),
    ("POST", "/api/work_pools/{}/get_scheduled_flow_runs/"),
    ("POST", "/api/work_pools/{}/workers/heartbeat/"),
    ("GET", "/api/work_pools/local/queues/{}/"),
    ("PATCH", "/api/work_pools/local/queues/{}/"),
    ("DELETE", "/api/work_pools/local/queues/{}/"),
]


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
@pytest.mark.parametrize(("method", "route"), NAMED_ROUTES, ids=[f"{m}-{r}" for m, r in NAMED_ROUTES])
def test_an_unknown_or_malformed_name_in_the_url_is_a_404(api, pool, method, route, name):
    """Whatever is in the URL, the answer is a JSON 404 (or 400), never a 500, and nothing is written."""
    before = snapshot()
    body = {"name": "w"} if method == "POST" else {}
    response = api.generic(method, route.format(name), json.dumps(body), content_type="application/json")
    assert response.status_code in (400, 404), (response.status_code, response.content[:300])
    support.assert_json(response)
    assert snapshot() == before


def test_a_pool_name_that_is_not_unique_is_a_409_and_writes_nothing(api, pool):
    before = snapshot()
    support.assert_error(api.post("/api/work_pools/", {"name": "local"}, format="json"), 409, field="name")
    support.assert_error(api.post("/api/work_pools/local/queues/", {"name": "default"}, format="json"), 409)
    support.assert_error(api.delete("/api/work_pools/local/queues/default/"), 409)
    assert snapshot() == before


def test_lists_refuse_a_bad_page(api, pool):
    for path in ("/api/work_pools/", "/api/work_pools/local/queues/", "/api/work_pools/local/workers/"):
        support.assert_error(api.get(path, {"limit": "x"}), 400, field="limit")
        support.assert_error(api.get(path, {"offset": "-1"}), 400, field="offset")

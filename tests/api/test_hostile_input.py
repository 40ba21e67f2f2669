"""Hostile input on every endpoint that takes input: each answer is a JSON 4xx naming the field, never a 500,
and a refused request writes nothing. Run on SQLite and PostgreSQL (which refuses NUL in text and jsonb)."""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import override_settings
from django.test.client import MULTIPART_CONTENT, encode_multipart

from apps.flows.api.views import FlowFilterSet
from apps.logs.api.views import LogFilterSet
from apps.runs.api.filters import FlowRunFilterSet, TaskRunFilterSet
from tests.api.support import assert_error, assert_json, snapshot

HOSTILE = "__HOSTILE__"


@dataclass(frozen=True)
class Endpoint:
    """One endpoint and method that accepts a JSON body: a valid body and, per field, values it must refuse."""

    name: str
    method: str
    path: str
    body: Callable[[Any], Any]
    # Where parser-level hostile values go (a path of dict keys inside the body).
    free: str
    bad: dict[str, list[Any]] = field(default_factory=dict)
    list_body: bool = False

    def url(self, world) -> str:
        return self.path.format(
            flow=world.flow.id, flow_run=world.flow_run.id, task_run=world.task_run.id, tag=world.limit.tag
        )

    def error_path(self, path: str) -> str:
        path = re.sub(r"\.(\d+)", r"[\1]", path)  # list items: task_runs.0.id is named task_runs[0].id
        return f"[0].{path}" if self.list_body else path


def set_path(body: Any, path: str, value: Any) -> Any:
    """A copy of `body` with the dotted `path` set to `value` (in the first item for list bodies)."""
    body = copy.deepcopy(body)
    target = body[0] if isinstance(body, list) else body
    *parents, last = path.split(".")
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target.setdefault(key, {})
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return body


def top_level(endpoint: Endpoint, path: str) -> str:
    return "[0]" if endpoint.list_body else path.split(".")[0]


UUID_BAD = ["not-a-uuid", "", "0" * 33, "{}", 1.5, -1, 5, True, [], {}]
# A number where text goes is refused, not turned into "12345678" (DRF's CharField would coerce it).
NAME_BAD = [None, "", "   ", "x" * 201, "a\x01b", "tab\tname", "a/b", "x" * 100_000, [], {}, True, 12345678, 1.5]
TEXT_BAD = ["x" * 100_000, [], {}, True, 12345678, 1.5]
TAGS_BAD = [
    "etl",
    {},
    5,
    True,
    [[]],
    [{}],
    [None],
    [5],
    [""],
    ["a,b"],
    ["x" * 201],
    ["bell\x07"],
    [f"t{i}" for i in range(101)],
]
OBJECT_BAD = [[], "x", 5, True]
TIME_BAD = ["yesterday", "", "2024-13-45T00:00:00Z", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", 5, []]
STATE_TYPE_BAD = [None, "", "RUNNIN", "running", 5, True, [], {}]


def int_bad(minimum: int, maximum: int) -> list[Any]:
    return ["ten", 1.5, True, [], {}, None, minimum - 1, maximum + 1]


def state_bad(prefix: str) -> dict[str, list[Any]]:
    """Bad values for a state proposal nested at `prefix`."""
    return {
        prefix: ["RUNNING", [], 5, True],
        f"{prefix}.type": STATE_TYPE_BAD,
        f"{prefix}.name": ["x" * 33, [], {}, True],
        f"{prefix}.message": ["x" * 20_001, [], {}],
        f"{prefix}.state_details": OBJECT_BAD,
        f"{prefix}.state_details.scheduled_time": TIME_BAD,
        f"{prefix}.state_details.pause_timeout": ["soon", 5, "9999-12-31T23:59:59-23:59"],
        f"{prefix}.state_details.cache_expiration": ["never", [], "0001-01-01T00:00:00+23:59"],
        f"{prefix}.state_details.cache_key": [5, [], "k" * 501],
        f"{prefix}.state_details.refresh_cache": ["yes", 1],
        f"{prefix}.timestamp": TIME_BAD,
        f"{prefix}.bogus": [1],
    }


POLICY_BAD = {
    "empirical_policy": OBJECT_BAD,
    "empirical_policy.retries": int_bad(0, 10_000),
    "empirical_policy.retry_delay": ["x", -1, [-1], [True], [[1]], {}, 10**10, [1] * 1001],
    "empirical_policy.retry_jitter_factor": ["x", -0.5, 1e6, []],
    "empirical_policy.bogus": [1],
}

ENDPOINTS = [
    Endpoint(
        "flow-create",
        "POST",
        "/api/flows/",
        lambda w: {"name": "new-flow", "tags": ["a"]},
        free="name",
        bad={"name": NAME_BAD, "tags": TAGS_BAD},
    ),
    Endpoint(
        "flow-update",
        "PATCH",
        "/api/flows/{flow}/",
        lambda w: {"name": "renamed", "tags": ["b"]},
        free="name",
        bad={"name": NAME_BAD, "tags": [None, *TAGS_BAD], "id": [str(uuid.uuid4())]},
    ),
    Endpoint(
        "flow-run-create",
        "POST",
        "/api/flow_runs/",
        lambda w: {
            "flow": str(w.flow.id),
            "name": "run",
            "parameters": {"x": 1},
            "tags": ["t"],
            "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": "2030-01-01T00:00:00Z"}},
        },
        free="parameters.x",
        bad={
            "flow": [None, *UUID_BAD],
            "name": [n for n in NAME_BAD if n is not None],
            "parameters": [None, *OBJECT_BAD],
            "tags": TAGS_BAD,
            "deployment": UUID_BAD,
            "parent_task_run": UUID_BAD,
            "idempotency_key": TEXT_BAD,
            "work_pool_name": TEXT_BAD,
            "work_queue_name": TEXT_BAD,
            "flow_version": TEXT_BAD,
            **POLICY_BAD,
            **state_bad("state"),
            "state.name": ["Running", "x" * 33, []],
            "id": [str(uuid.uuid4())],
            "state_type": ["COMPLETED"],
        },
    ),
    Endpoint(
        "flow-run-update",
        "PATCH",
        "/api/flow_runs/{flow_run}/",
        lambda w: {"name": "renamed", "tags": ["b"], "parameters": {"y": 2}},
        free="parameters.x",
        bad={
            "name": NAME_BAD,
            "tags": TAGS_BAD,
            "parameters": OBJECT_BAD,
            "state": [{"type": "COMPLETED"}],
            "flow": [str(uuid.uuid4())],
            "run_count": [5],
        },
    ),
    Endpoint(
        "flow-run-set-state",
        "POST",
        "/api/flow_runs/{flow_run}/set_state/",
        lambda w: {"state": {"type": "RUNNING", "message": "go"}, "force": False},
        free="state.data",
        bad={
            **state_bad("state"),
            "state.name": ["Completed", "x" * 33, []],
            "state": [None, "RUNNING", [], 5, True],
            "force": ["maybe", [], {}, 5, None],
            "bogus": [1],
        },
    ),
    Endpoint(
        "task-run-create",
        "POST",
        "/api/task_runs/",
        lambda w: {
            "flow_run": str(w.flow_run.id),
            "task_key": "pkg.new",
            "dynamic_key": "7",
            "tags": ["t"],
            "state": {"type": "PENDING"},
        },
        free="name",
        bad={
            "flow_run": UUID_BAD,
            "task_key": [None, "", "k" * 501, [], {}, True, 7],
            "dynamic_key": ["k" * 201, [], {}, True],
            "name": [n for n in NAME_BAD if n is not None],
            "tags": TAGS_BAD,
            "cache_key": ["k" * 501, [], {}],
            "cache_expiration": TIME_BAD,
            "task_version": TEXT_BAD,
            "task_inputs": [
                *OBJECT_BAD,
                {"x": "not-a-list"},
                {"x": [5]},
                {"x": [{"input_type": "bogus"}]},
                {"x": [{"input_type": "task_run", "id": "nope"}]},
                {"x": [{"input_type": "task_run", "id": 7}]},
                {"x": [{"input_type": "task_run", "extra": 1}]},
                {"x": [{"name": "no input type"}]},
            ],
            **POLICY_BAD,
            **state_bad("state"),
        },
    ),
    Endpoint(
        "task-run-update",
        "PATCH",
        "/api/task_runs/{task_run}/",
        lambda w: {"name": "renamed", "tags": ["b"]},
        free="name",
        bad={"name": NAME_BAD, "tags": [None, *TAGS_BAD], "task_key": ["other"], "flow_run": [None]},
    ),
    Endpoint(
        "task-run-set-state",
        "POST",
        "/api/task_runs/{task_run}/set_state/",
        lambda w: {"state": {"type": "RUNNING"}},
        free="state.data",
        bad={
            **state_bad("state"),
            "state": [None, "RUNNING", [], 5],
            "force": ["maybe", [], 5],
            "bogus": [1],
        },
    ),
    Endpoint(
        "task-run-record",
        "POST",
        "/api/task_runs/record/",
        lambda w: {
            "task_runs": [
                {
                    "id": "6f1c7c1e-8a2b-4c1e-9d1f-1a2b3c4d5e6f",
                    "flow_run": str(w.flow_run.id),
                    "task_key": "pkg.recorded",
                    "dynamic_key": "0",
                    "states": [
                        {"type": "PENDING", "timestamp": "2026-01-01T00:00:00Z"},
                        {"type": "RUNNING", "timestamp": "2026-01-01T00:00:01Z"},
                    ],
                }
            ],
            "states": [
                {"task_run": str(w.task_run.id), "state": {"type": "RUNNING", "timestamp": "2026-01-01T00:00:02Z"}}
            ],
        },
        free="task_runs.0.name",
        bad={
            "task_runs": [None, "x", 5, {}, [5], [None], [[]]],
            "task_runs.0.id": [None, *UUID_BAD],
            "task_runs.0.flow_run": UUID_BAD,
            "task_runs.0.task_key": [None, "", "k" * 501, [], {}, True],
            "task_runs.0.dynamic_key": ["k" * 201, [], {}, True],
            "task_runs.0.name": [n for n in NAME_BAD if n is not None],
            "task_runs.0.tags": TAGS_BAD,
            "task_runs.0.states": [None, [], "x", [5], [{"type": "PENDING", "timestamp": "2026-01-01T00:00:00Z"}] * 11],
            "task_runs.0.states.0.type": STATE_TYPE_BAD,
            "task_runs.0.states.0.timestamp": [None, *TIME_BAD],
            "task_runs.0.states.0.name": ["Running", "x" * 33],
            "task_runs.0.state": [{"type": "PENDING"}],
            "task_runs.0.cache_key": ["k"],
            **{f"task_runs.0.{key}": values for key, values in POLICY_BAD.items()},
            "states": [None, "x", 5, {}, [5]],
            "states.0.task_run": [None, *UUID_BAD],
            "states.0.state": [None, "RUNNING", [], 5],
            "states.0.state.type": STATE_TYPE_BAD,
            "states.0.state.timestamp": [None, *TIME_BAD],
            "states.0.bogus": [1],
        },
    ),
    Endpoint(
        "log-create",
        "POST",
        "/api/logs/",
        lambda w: [{"flow_run": str(w.flow_run.id), "task_run": str(w.task_run.id), "message": "hello", "level": 20}],
        free="message",
        list_body=True,
        bad={
            "flow_run": UUID_BAD,
            "task_run": UUID_BAD,
            "name": ["x" * 201, [], {}, True],
            "level": int_bad(0, 100),
            "message": [None, [], {}, True, "x" * 1_000_001],
            "timestamp": TIME_BAD,
            "id": [str(uuid.uuid4())],
        },
    ),
    Endpoint(
        "concurrency-limit-create",
        "POST",
        "/api/concurrency_limits/",
        lambda w: {"tag": "new-tag", "limit": 3},
        free="limit",
        bad={
            "tag": [None, "", "   ", "x" * 201, "a/b", "a,b", "nul\x01", [], {}, True],
            "limit": int_bad(0, 1_000_000),
            "active_slots": [["x"]],
        },
    ),
    Endpoint(
        "concurrency-limit-update",
        "PATCH",
        "/api/concurrency_limits/{tag}/",
        lambda w: {"limit": 4},
        free="limit",
        bad={"limit": int_bad(0, 1_000_000), "tag": ["renamed"]},
    ),
    Endpoint(
        "block-document-create",
        "POST",
        "/api/block_documents/",
        lambda w: {"block_type": "smtp", "name": "mail", "data": {"host": "h", "from_address": "a@b.c", "tls": True}},
        free="data.host",
        bad={
            "block_type": [None, "", "nope", 5, True, [], {}, "x" * 100_000],
            "name": NAME_BAD,
            "data": [None, "x", 5, True, []],
            "data.host": ["", 5, [], {}, None],
            "data.port": ["ten", 1.5, [], {}, 0, 65536],
            "data.tls": ["maybe", [], {}],
            "data.from_address": ["nobody", 5, None],
            "data.bogus": [1],
            "overwrite": ["maybe", [], {}, None],
        },
    ),
]


def send(api, endpoint: Endpoint, world, data: bytes | str, content_type: str = "application/json"):
    return api.generic(endpoint.method, endpoint.url(world), data, content_type=content_type)


def field_cases() -> list:
    cases = []
    for endpoint in ENDPOINTS:
        for path, values in endpoint.bad.items():
            for index, value in enumerate(values):
                cases.append(pytest.param(endpoint, path, value, id=f"{endpoint.name}-{path}-{index}"))
    return cases


@pytest.mark.parametrize(("endpoint", "path", "value"), field_cases())
def test_a_wrong_value_for_a_field_is_a_400_naming_it(api, world, endpoint, path, value):
    """Each field refuses wrong types, out-of-range and malformed values (and unknown names) by name."""
    before = snapshot()
    body = set_path(endpoint.body(world), path, value)
    response = send(api, endpoint, world, json.dumps(body))
    assert_error(response, 400, code="invalid_input", field=endpoint.error_path(path))
    assert snapshot() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_the_valid_body_used_by_these_tests_is_accepted(api, world, endpoint):
    """The matrix starts from a body the endpoint accepts, so each refusal is caused by the one bad value."""
    response = send(api, endpoint, world, json.dumps(endpoint.body(world)))
    assert response.status_code in (200, 201), response.content
    assert_json(response)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_an_unknown_field_is_a_400_naming_it(api, world, endpoint):
    """A misspelt field is reported instead of silently ignored (which would lose the client's data)."""
    before = snapshot()
    body = set_path(endpoint.body(world), "colour", "blue")
    body_error = assert_error(send(api, endpoint, world, json.dumps(body)), 400, code="invalid_input")
    assert body_error["fields"] == {endpoint.error_path("colour"): ["unknown field"]}
    assert snapshot() == before


MALFORMED = [
    b"{",
    b'{"name": }',
    b"{'name': 'x'}",
    b'{"a": 1} trailing',
    b'{"a": 1,}',
    b'{"a": 01}',
    b'{"a": "unterminated}',
    b'{"a": "\\x41"}',
    b"\xff\xfe{\x00}\x00",
    b'{"a": "\xed\xa0\x80"}',
    b'{"a": "caf\xe9"}',
    b"\xef\xbb\xbf{}",
    b"[" * 10_000 + b"]" * 10_000,
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    b'{"a": ' + b"9" * 5_000 + b"}",
]


@pytest.mark.parametrize("raw", MALFORMED, ids=[f"malformed-{index}" for index in range(len(MALFORMED))])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_malformed_json_is_a_400(api, world, endpoint, raw):
    """Broken, non-UTF-8 and absurdly nested or long bodies are refused before any view code runs."""
    before = snapshot()
    assert_error(send(api, endpoint, world, raw), 400)
    assert snapshot() == before


NOT_AN_OBJECT = [b'"text"', b"42", b"true", b"null", b"[1, 2]", b'[{"x": 1}]', b"[[]]", b"[]"]


def not_an_object_cases() -> list:
    """Every endpoint with every non-object body, except the empty list of logs (a valid, empty batch)."""
    return [
        pytest.param(endpoint, raw, id=f"{endpoint.name}-{raw.decode()}")
        for endpoint in ENDPOINTS
        for raw in NOT_AN_OBJECT
        if not (endpoint.list_body and raw == b"[]")
    ]


@pytest.mark.parametrize(("endpoint", "raw"), not_an_object_cases())
def test_a_body_that_is_not_an_object_is_a_400(api, world, endpoint, raw):
    """A list, a scalar or null where an object is expected is refused (logs take a list of objects)."""
    before = snapshot()
    body = assert_error(send(api, endpoint, world, raw), 400, code="invalid_input")
    assert "fields" in body
    assert snapshot() == before


# Raw JSON that json.loads accepts but no database column can hold; each goes into the endpoint's free field.
UNSTORABLE = {
    "nan": "NaN",
    "infinity": "Infinity",
    "minus-infinity": "-Infinity",
    "overflowing-float": "1e400",
    "overflowing-negative-float": "-1e999",
    "huge-int": str(10**30),
    "huge-negative-int": str(-(10**30)),
    "nul": '"a\\u0000b"',
    "nul-only": '"\\u0000"',
    "nul-in-list": '["ok", "\\u0000"]',
    "nul-in-key": '{"k\\u0000": 1}',
    "lone-high-surrogate": '"\\ud800"',
    "lone-low-surrogate": '"tail \\udfff"',
    "surrogate-in-key": '{"\\udc00": 1}',
    "nested-deeper-than-the-limit": "[" * 100 + "]" * 100,
    "nested-objects-deeper-than-the-limit": '{"a":' * 100 + "1" + "}" * 100,
}


@pytest.mark.parametrize("raw", UNSTORABLE.values(), ids=UNSTORABLE.keys())
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_values_no_database_can_store_are_a_400_naming_the_field(api, world, endpoint, raw):
    """NUL, lone surrogates, NaN/Infinity, 64-bit overflows and deep nesting are refused by the parser, by path."""
    before = snapshot()
    text = json.dumps(set_path(endpoint.body(world), endpoint.free, HOSTILE)).replace(f'"{HOSTILE}"', raw)
    response = send(api, endpoint, world, text)
    deep = raw.startswith(("[", '{"a":'))
    expected = top_level(endpoint, endpoint.free) if deep else endpoint.error_path(endpoint.free)
    assert_error(response, 400, code="invalid_input", field=expected)
    assert snapshot() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_a_nul_in_a_top_level_key_is_a_400(api, world, endpoint):
    """A NUL inside a field name is refused without echoing the name back."""
    before = snapshot()
    raw = '{"na\\u0000me": "x"}' if not endpoint.list_body else '[{"na\\u0000me": "x"}]'
    body = assert_error(send(api, endpoint, world, raw), 400, code="invalid_input")
    assert "\x00" not in json.dumps(body, ensure_ascii=False)
    assert snapshot() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_a_body_over_the_size_limit_is_a_413(api, world, endpoint):
    """Oversized bodies are refused before they are read into memory."""
    before = snapshot()
    text = json.dumps(endpoint.body(world)) + " " * 2_000
    with override_settings(API_MAX_BODY_BYTES=1_024):
        response = send(api, endpoint, world, text)
    body = assert_error(response, 413, code="payload_too_large")
    assert "1024" in body["message"]
    assert snapshot() == before


def test_a_body_just_under_the_size_limit_is_accepted(api, world):
    """The limit refuses only what is over it."""
    text = json.dumps({"name": "fits"})
    with override_settings(API_MAX_BODY_BYTES=len(text)):
        response = api.post("/api/flows/", text, content_type="application/json")
    assert response.status_code == 201


WRONG_CONTENT_TYPES = [
    ("text/plain", "json"),
    ("application/x-www-form-urlencoded", "form"),
    (MULTIPART_CONTENT, "multipart"),
    ("application/xml", "<flow name='x'/>"),
    ("application/json-patch+json", "json"),
    ("text/html; charset=utf-8", "json"),
]


@pytest.mark.parametrize(("content_type", "kind"), WRONG_CONTENT_TYPES, ids=[c for c, _ in WRONG_CONTENT_TYPES])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_a_body_that_is_not_json_is_a_415(api, world, endpoint, content_type, kind):
    """Only JSON is accepted; form posts and other formats get 415 naming what was sent."""
    before = snapshot()
    body = endpoint.body(world)
    flat = body[0] if isinstance(body, list) else body
    if kind == "json":
        data = json.dumps(body)
    elif kind == "form":
        data = "&".join(f"{key}={value}" for key, value in flat.items() if isinstance(value, str)) or "force=true"
    elif kind == "multipart":
        fields = {key: value for key, value in flat.items() if isinstance(value, str)} or {"force": "true"}
        data = encode_multipart("BoUnDaRy", fields)
    else:
        data = kind
    response = send(api, endpoint, world, data, content_type=content_type)
    error = assert_error(response, 415, code="unsupported_media_type")
    assert content_type.split(";")[0] in error["message"]
    assert snapshot() == before


def test_resume_takes_no_body_and_ignores_a_hostile_one(api, world):
    """resume has no input: whatever body is sent, the answer depends only on the run (409: not paused)."""
    before = snapshot()
    url = f"/api/flow_runs/{world.flow_run.id}/resume/"
    for data, content_type in [(b"{", "application/json"), (b"\x00" * 100, "text/plain"), (b"[" * 10_000, "")]:
        assert_error(api.generic("POST", url, data, content_type=content_type), 409, code="conflict")
    assert snapshot() == before


# ---- unknown and malformed ids in the URL ----

DETAIL_ROUTES = [
    ("GET", "/api/flows/{}/"),
    ("PATCH", "/api/flows/{}/"),
    ("DELETE", "/api/flows/{}/"),
    ("GET", "/api/flow_runs/{}/"),
    ("PATCH", "/api/flow_runs/{}/"),
    ("DELETE", "/api/flow_runs/{}/"),
    ("POST", "/api/flow_runs/{}/set_state/"),
    ("GET", "/api/flow_runs/{}/states/"),
    ("GET", "/api/flow_runs/{}/graph/"),
    ("POST", "/api/flow_runs/{}/resume/"),
    ("GET", "/api/task_runs/{}/"),
    ("PATCH", "/api/task_runs/{}/"),
    ("DELETE", "/api/task_runs/{}/"),
    ("POST", "/api/task_runs/{}/set_state/"),
    ("GET", "/api/task_runs/{}/states/"),
]
BAD_IDS = {
    "unknown-uuid": "0b7e8f5c-1d7e-4c8a-9d0e-3f1a2b3c4d5e",
    "unknown-hex": "0" * 32,
    "dashes-only": "-" * 36,
    "not-a-uuid": "not-a-uuid",
    "integer": "42",
    "nul": "%00",
    "nul-in-uuid": "0b7e8f5c-1d7e-4c8a-9d0e-3f1a2b3c4d5e%00",
    "emoji": "%F0%9F%93%8A",
    "sql": "1%27%20OR%20%271%27=%271",
    "traversal": "..%2F..%2Fadmin",
    "very-long": "a" * 5_000,
}
VALID_BODIES = {
    "set_state": {"state": {"type": "RUNNING"}},
    "flows": {"name": "renamed"},
    "runs": {"name": "renamed"},
}


@pytest.mark.parametrize("bad_id", BAD_IDS.values(), ids=BAD_IDS.keys())
@pytest.mark.parametrize(("method", "route"), DETAIL_ROUTES, ids=[f"{m}-{r}" for m, r in DETAIL_ROUTES])
def test_an_unknown_or_malformed_id_is_a_json_404(api, world, method, route, bad_id):
    """Every id in a URL that names nothing is a JSON 404 (never HTML, never a 500), and nothing changes."""
    before = snapshot()
    body = VALID_BODIES["set_state"] if "set_state" in route else {"name": "renamed"}
    response = api.generic(method, route.format(bad_id), json.dumps(body), content_type="application/json")
    assert_error(response, 404, code="not_found")
    assert snapshot() == before


BAD_TAGS = {
    "unknown": "no-such-tag",
    "nul": "%00",
    "control": "a%01b",
    "delete-char": "a%7F",
    "dot-dot": "..",
    "slash": "a%2Fb",
    "emoji": "%F0%9F%93%8A",
    "rtl": "%D8%AA%D9%82%D8%B1%D9%8A%D8%B1",
    "sql": "%27%3B%20DROP%20TABLE%20concurrency_concurrencylimit%3B%20--",
    "very-long": "t" * 5_000,
}


@pytest.mark.parametrize("tag", BAD_TAGS.values(), ids=BAD_TAGS.keys())
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_an_unknown_or_hostile_concurrency_tag_is_a_json_404(api, world, method, tag):
    """Limits are addressed by tag: a tag that names no limit (NUL included) is a JSON 404."""
    before = snapshot()
    response = api.generic(method, f"/api/concurrency_limits/{tag}/", '{"limit": 1}', content_type="application/json")
    assert_error(response, 404, code="not_found")
    assert snapshot() == before


WRONG_METHODS = [
    ("PUT", "/api/flows/{flow}/"),
    ("POST", "/api/flows/{flow}/"),
    ("DELETE", "/api/flows/"),
    ("PUT", "/api/flow_runs/{flow_run}/"),
    ("PATCH", "/api/flow_runs/"),
    ("GET", "/api/flow_runs/{flow_run}/set_state/"),
    ("GET", "/api/flow_runs/{flow_run}/resume/"),
    ("POST", "/api/flow_runs/{flow_run}/states/"),
    ("DELETE", "/api/flow_runs/{flow_run}/graph/"),
    ("PUT", "/api/task_runs/{task_run}/"),
    ("GET", "/api/task_runs/{task_run}/set_state/"),
    ("PATCH", "/api/logs/"),
    ("DELETE", "/api/logs/"),
    ("PUT", "/api/concurrency_limits/{tag}/"),
    ("POST", "/api/concurrency_limits/{tag}/"),
    ("POST", "/api/health/"),
    ("DELETE", "/api/version/"),
    ("POST", "/api/schema/"),
]


@pytest.mark.parametrize(("method", "route"), WRONG_METHODS, ids=[f"{m}-{r}" for m, r in WRONG_METHODS])
def test_an_unsupported_method_is_a_json_405(api, world, method, route):
    """A method an endpoint does not offer is a clear 405, and nothing changes."""
    before = snapshot()
    url = route.format(flow=world.flow.id, flow_run=world.flow_run.id, task_run=world.task_run.id, tag="database")
    response = api.generic(method, url, '{"name": "x"}', content_type="application/json")
    assert_error(response, 405, code="method_not_allowed")
    assert method in response.json()["message"]
    assert snapshot() == before


# ---- query strings on the lists ----

LISTS = {
    "/api/flows/": FlowFilterSet,
    "/api/flow_runs/": FlowRunFilterSet,
    "/api/task_runs/": TaskRunFilterSet,
    "/api/logs/": LogFilterSet,
    "/api/concurrency_limits/": None,
}
PAGINATION_BAD = [
    ("limit", "-1"),
    ("limit", "0"),
    ("limit", "ten"),
    ("limit", "1.5"),
    ("limit", "1e3"),
    ("limit", "--5"),
    ("limit", "\x00"),
    ("limit", "٣"),
    ("limit", " 5"),
    ("limit", "9" * 5_000),
    ("offset", "-5"),
    ("offset", "abc"),
    ("offset", "0x10"),
    ("offset", "NaN"),
]


@pytest.mark.parametrize(("param", "value"), PAGINATION_BAD, ids=[f"{p}={v[:12]!r}" for p, v in PAGINATION_BAD])
@pytest.mark.parametrize("path", LISTS)
def test_bad_limit_and_offset_are_a_400_naming_the_parameter(api, world, path, param, value):
    """Pagination parameters must be whole numbers in range (limit >= 1, or `next` would loop forever)."""
    assert_error(api.get(path, {param: value}), 400, code="invalid_input", field=param)


def filter_cases() -> list:
    cases = []
    for path, filterset in LISTS.items():
        for name in filterset.base_filters if filterset else []:
            cases.append(pytest.param(path, name, id=f"{path}?{name}"))
    return cases


# Values every filter must survive: text filters treat them as text (200), typed filters refuse them (400).
ODD_FILTER_VALUES = {
    "sql": "'; DROP TABLE flows_flow; --",
    "sql-like": "%' OR '1'='1",
    "wildcards": "%_\\",
    "emoji": "📊🔥",
    "rtl": "تقرير",
    "control": "a\x01b\x7f",
    "commas": ",,,",
    "long": "x" * 10_000,
    "many-items": ",".join(f"v{index}" for index in range(2_000)),
    "year-zero": "0000-01-01T00:00:00Z",
    "overflowing-offset": "9999-12-31T23:59:59-23:59",
    "underflowing-offset": "0001-01-01T00:00:00+23:59",
    "huge-number": "1e400",
    "huge-integer": "9" * 40,
    "nan": "NaN",
}


def filter_failure(response, name: str, *, must_refuse: bool) -> str | None:
    """Why this answer to a hostile filter value is wrong, or None when it is right."""
    try:
        if response.status_code == 200 and not must_refuse:
            assert set(assert_json(response)) == {"next", "previous", "results"}
        else:
            assert_error(response, 400, code="invalid_input", field=name)
    except AssertionError as exc:
        return str(exc)[:300]
    return None


@pytest.mark.parametrize(("path", "name"), filter_cases())
def test_every_filter_survives_odd_values(api, world, path, name):
    """Injection-shaped, unicode, overlong, out-of-range values: a 200 list or a 400 naming the filter; and NUL,
    which cannot reach PostgreSQL, is always a 400. (One test per filter, listing every value that fails.)"""
    failures = {}
    for label, value in ODD_FILTER_VALUES.items():
        failures[label] = filter_failure(api.get(path, {name: value}), name, must_refuse=False)
    for label, value in {"nul": "\x00", "nul-inside": "a\x00b"}.items():
        failures[label] = filter_failure(api.get(path, {name: value}), name, must_refuse=True)
    assert {label: why for label, why in failures.items() if why} == {}


def test_a_list_filter_with_too_many_items_is_a_400(api, world):
    """Thousands of tags would exceed SQLite's expression depth; the filter refuses them with a reason."""
    tags = ",".join(f"t{index}" for index in range(101))
    body = assert_error(api.get("/api/flow_runs/", {"tags": tags}), 400, code="invalid_input", field="tags")
    assert "100" in body["message"]


@pytest.mark.parametrize(
    "ordering", ["--name", "-", ",,,", "name;DROP TABLE x", "\x00", "flow__name", "parameters", "id,", "?", "📊"]
)
@pytest.mark.parametrize("path", LISTS)
def test_odd_ordering_values_are_ignored_not_errors(api, world, path, ordering):
    """Orderings outside the allowed fields are dropped (DRF's behaviour); none reaches the database."""
    response = api.get(path, {"ordering": ordering})
    assert response.status_code == 200, response.content
    assert "results" in assert_json(response)


def test_odd_values_in_names_and_filters_round_trip(api, world):
    """SQL-shaped and unicode names are stored as text and found again by the filters."""
    odd_names = ["Robert'); DROP TABLE runs_flowrun;--", "📊 daily", "تقرير يومي", "50% off_sale\\"]
    for odd in odd_names:
        response = api.post("/api/flow_runs/", {"flow": str(world.flow.id), "name": odd}, format="json")
        assert response.status_code == 201, response.content
    for odd in odd_names:
        results = api.get("/api/flow_runs/", {"name__icontains": odd}).json()["results"]
        assert [run["name"] for run in results] == [odd]


def test_a_retry_policy_whose_delay_would_pass_year_9999_is_a_400(api, world):
    """The engine schedules a retry at now + delay * (1 + jitter); one past year 9999 crashed the FAILED transition."""
    before = snapshot()
    policy = {"retries": 1, "retry_delay": [5, 10**9], "retry_jitter_factor": 1000}
    response = api.post("/api/flow_runs/", {"flow": str(world.flow.id), "empirical_policy": policy}, format="json")
    assert_error(response, 400, code="invalid_input", field="empirical_policy.retry_jitter_factor")
    assert snapshot() == before


def test_the_longest_allowed_retry_delay_is_scheduled(api, world):
    """At the limit, a failed run still becomes AwaitingRetry with a storable time."""
    policy = {"retries": 1, "retry_delay": 10**9}
    run = api.post("/api/flow_runs/", {"flow": str(world.flow.id), "empirical_policy": policy}, format="json").json()
    url = f"/api/flow_runs/{run['id']}/set_state/"
    api.post(url, {"state": {"type": "RUNNING"}}, format="json")
    body = api.post(url, {"state": {"type": "FAILED"}}, format="json").json()
    assert (body["status"], body["state"]["name"]) == ("REJECT", "AwaitingRetry")


def test_control_characters_in_free_text_are_stored_unchanged(api, world):
    """Parameters, messages and logs may carry tabs, escapes and other non-NUL control characters verbatim."""
    text = "tab\there\x01\x1b[31mred\x1b[0m\x7f\r\n📊 تقرير"
    run = api.post("/api/flow_runs/", {"flow": str(world.flow.id), "parameters": {text: [text]}}, format="json").json()
    assert api.get(f"/api/flow_runs/{run['id']}/").json()["parameters"] == {text: [text]}
    state = {"type": "RUNNING", "message": text, "data": {"note": text}}
    body = api.post(f"/api/flow_runs/{run['id']}/set_state/", {"state": state}, format="json").json()
    assert (body["state"]["message"], body["state"]["data"]) == (text, {"note": text})
    assert api.post("/api/logs/", [{"flow_run": run["id"], "message": text}], format="json").status_code == 201
    assert api.get("/api/logs/", {"flow_run": run["id"]}).json()["results"][0]["message"] == text


ROUTES_WITHOUT_SLASH = [
    ("POST", "/api/flows", 201),
    ("GET", "/api/flows", 200),
    ("GET", "/api/flows/{flow}", 200),
    ("GET", "/api/flow_runs/{flow_run}/states", 200),
    ("POST", "/api/flow_runs/{flow_run}/set_state", 201),
    ("GET", "/api/task_runs", 200),
    ("GET", "/api/logs", 200),
    ("GET", "/api/concurrency_limits/{tag}", 200),
]


@pytest.mark.parametrize(
    ("method", "route", "status"), ROUTES_WITHOUT_SLASH, ids=[r for _, r, _ in ROUTES_WITHOUT_SLASH]
)
def test_the_trailing_slash_is_optional(api, world, method, route, status):
    """Without this, `POST /api/flows` got a 301 that HTTP clients follow as a GET, so nothing was created."""
    url = route.format(flow=world.flow.id, flow_run=world.flow_run.id, tag=world.limit.tag)
    body = {"state": {"type": "RUNNING"}} if "set_state" in route else {"name": "no-slash"}
    response = api.generic(method, url, json.dumps(body), content_type="application/json")
    assert response.status_code == status, response.content
    assert_json(response)

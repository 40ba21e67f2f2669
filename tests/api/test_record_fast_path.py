"""The fast path of POST /api/task_runs/record/ (apps/runs/api/record_fast_path.py) against the serializer it
stands in for: on every body it either steps aside (None) or gives exactly the serializer's records, and it
never accepts a body the serializer refuses."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from apps.runs.api.record_fast_path import records_accept
from apps.runs.api.serializers import TaskRunsRecordSerializer
from orchestrator.states import State

FLOW_RUN = str(uuid.uuid4())


def sdk_state(kind: str, name: str, timestamp: str = "2026-12-04T00:42:34.952636+00:00") -> dict[str, Any]:
    """A state as the SDK's shipper sends it."""
    details = {"transition_id": uuid.uuid4().hex}
    return {"type": kind, "name": name, "timestamp": timestamp, "message": None, "state_details": details, "data": None}


def sdk_record(index: int = 0) -> dict[str, Any]:
    """A task run record as the SDK's shipper sends it (captured from a real flow run)."""
    return {
        "id": str(uuid.uuid4()),
        "flow_run": FLOW_RUN,
        "task_key": "flows.noop",
        "dynamic_key": str(index),
        "name": f"noop-{index}",
        "tags": [],
        "task_inputs": {},
        "empirical_policy": {"retries": 0, "retry_delay": 0.0, "retry_jitter_factor": None},
        "states": [
            sdk_state("PENDING", "Pending"),
            sdk_state("RUNNING", "Running"),
            sdk_state("COMPLETED", "Completed"),
        ],
    }


def sdk_body() -> dict[str, Any]:
    later = {"task_run": str(uuid.uuid4()), "state": sdk_state("FAILED", "Failed")}
    return {"task_runs": [sdk_record(0), sdk_record(1)], "states": [later]}


def comparable(value: Any) -> Any:
    """Records with their State objects and value types spelled out, so that a UUID never equals its text."""
    if isinstance(value, State):
        return ("State", value.type, value.name, value.message, comparable(value.state_details), comparable(value.data))
    if isinstance(value, datetime):
        return ("datetime", value.isoformat(), str(value.tzinfo))
    if isinstance(value, dict):
        return {key: comparable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [comparable(item) for item in value]
    return (type(value).__name__, value)


def timestamps(records: tuple[list[dict], list[dict]]) -> list[Any]:
    """The states' times, compared apart (State objects compare without them)."""
    runs, later = records
    states = [state for run in runs for state in run["states"]] + [item["state"] for item in later]
    return [comparable(state.timestamp) for state in states]


def serializer_records(body: Any) -> tuple[list[dict], list[dict]] | None:
    serializer = TaskRunsRecordSerializer(data=copy.deepcopy(body))
    return serializer.records() if serializer.is_valid() else None


def check(body: Any) -> str | None:
    """What is wrong with the fast path on `body`, or None."""
    body = json.loads(json.dumps(body))  # as the parser gives it
    slow = serializer_records(body)
    fast = records_accept(copy.deepcopy(body))
    if fast is None:
        return None
    if slow is None:
        return "accepted a body the serializer refuses"
    if comparable(fast) != comparable(slow) or timestamps(fast) != timestamps(slow):
        return f"differs from the serializer: {comparable(fast)} != {comparable(slow)}"
    return None


VALID_VARIANTS = {
    "as the SDK sends it": lambda body: body,
    "no name": lambda body: body["task_runs"][0].pop("name"),
    "null name and version": lambda body: body["task_runs"][0].update(name=None, task_version=None),
    "a version": lambda body: body["task_runs"][0].update(task_version="1.2.3"),
    "tags repeated": lambda body: body["task_runs"][0].update(tags=["a", "b", "a"]),
    "only required fields": lambda body: body.update(
        task_runs=[
            {
                "id": str(uuid.uuid4()),
                "flow_run": None,
                "task_key": "k",
                "states": [{"type": "PENDING", "timestamp": "2026-01-01T00:00:00Z"}],
            }
        ],
        states=[],
    ),
    "task inputs": lambda body: body["task_runs"][0].update(
        task_inputs={
            "x": [{"input_type": "task_run", "id": str(uuid.uuid4()).upper()}],
            "y": [{"input_type": "parameter", "name": "y"}, {"input_type": "constant"}],
            "z": [],
        }
    ),
    "retries and delays": lambda body: body["task_runs"][0].update(
        empirical_policy={"retries": 3, "retry_delay": [1, 2.5, 10], "retry_jitter_factor": 1}
    ),
    "no policy fields": lambda body: body["task_runs"][0].update(empirical_policy={}),
    "an empty message, a result reference and details": lambda body: body["task_runs"][0]["states"][2].update(
        message="", data={"storage": "local", "path": "/x"}, state_details={"cache_key": "k", "refresh_cache": True}
    ),
    "a message": lambda body: body["task_runs"][0]["states"][2].update(message="it went fine"),
    "other offsets": lambda body: [
        body["task_runs"][0]["states"][0].update(timestamp="2026-12-04T02:42:34+02:00"),
        body["task_runs"][0]["states"][1].update(timestamp="2026-12-04T00:42:35Z"),
        body["task_runs"][0]["states"][2].update(timestamp="2026-12-03T19:42:35.5-05:00"),
    ],
    "a named state of its type": lambda body: body["task_runs"][0]["states"][2].update(
        type="SCHEDULED", name="AwaitingRetry"
    ),
    "only later states": lambda body: body.pop("task_runs"),
    "nothing": lambda body: body.clear(),
}


@pytest.mark.parametrize("variant", list(VALID_VARIANTS))
def test_valid_batches_are_taken_as_the_serializer_takes_them(variant):
    body = sdk_body()
    VALID_VARIANTS[variant](body)
    assert serializer_records(json.loads(json.dumps(body))) is not None, "the variant must be valid"
    if variant in ("as the SDK sends it", "task inputs", "retries and delays", "other offsets", "nothing"):
        assert records_accept(json.loads(json.dumps(body))) is not None, "the SDK's own shapes take the fast path"
    assert check(body) is None


ODD_VALUES: list[Any] = [
    None, "", " x", "x ", "a/b", "a,b", "é", "x\n", "x\x00", "\x7f", "x" * 201, "x" * 20_001, 0, -1, 1.5, 10**12,
    True, [], ["a"], [1], {}, {"a": 1}, "not-a-uuid", str(uuid.uuid4()), "PENDING", "Scheduled", "Completed",
    "2026-01-01T00:00:00", "2026-01-01T00:00:00+00:00", "9999-12-31T23:59:59-23:00", "task_run",
    [None], [-1], [10**10], list(range(1001)), [True], {"retries": 1},
]  # fmt: skip


def paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every place in a body: keys of objects and indexes of lists, depth first."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


def altered(body: dict, path: tuple, change: str, odd: Any = None) -> dict:
    body = copy.deepcopy(body)
    *parents, last = path
    holder: Any = body
    for step in parents:
        holder = holder[step]
    if change == "remove":
        holder.pop(last)
    elif change == "unknown":
        if isinstance(holder[last], dict):
            holder[last]["surprise"] = 1
    else:
        holder[last] = odd
    return body


def test_no_altered_batch_is_taken_unless_the_serializer_takes_it_the_same_way():
    body = sdk_body()
    body["task_runs"][0].update(
        task_version="1",
        tags=["t"],
        task_inputs={
            "x": [{"input_type": "task_run", "id": str(uuid.uuid4())}, {"input_type": "parameter", "name": "p"}]
        },
        empirical_policy={"retries": 2, "retry_delay": [1, 2], "retry_jitter_factor": 0.5},
    )
    body["task_runs"][0]["states"][1].update(message="m", data={"k": [1]}, state_details={"refresh_cache": False})
    problems, cases = [], 0
    for path in list(paths(body))[1:]:
        changes = [("remove", None), ("unknown", None)] + [("set", odd) for odd in ODD_VALUES]
        for change, odd in changes:
            cases += 1
            problem = check(altered(body, path, change, odd))
            if problem:
                problems.append(f"{'/'.join(map(str, path))} {change} {odd!r:.40}: {problem:.300}")
    assert cases > 3000
    assert not problems, "\n".join(problems[:20])


def test_a_body_that_is_not_an_object_or_lists_steps_aside():
    for body in ([], "x", None, 5, {"task_runs": {}}, {"task_runs": [], "extra": []}, {"task_runs": [[]]}):
        assert records_accept(body) is None

"""The fast path of `POST /api/task_runs/record/`: the batches the SDK sends, validated without DRF's per-field
machinery (which costs a fifth of the server's time per recorded task run).

`records_accept(body)` either returns exactly what `TaskRunsRecordSerializer(data=body).records()` would, or
None when the body holds anything it does not check the way the serializer does: an unknown or unusual
field, a string with surrounding spaces or non-ASCII text, a time in a detail, a value out of range. The
serializer then validates the body and explains what is wrong. So this path may refuse more than the
serializer but must never accept what the serializer refuses; tests/api/test_record_fast_path.py compares
the two on valid bodies and on hundreds of altered ones.
"""

from __future__ import annotations

import uuid
from datetime import datetime, tzinfo
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from apps.runs.api.serializers import MAX_MESSAGE, MAX_RECORDS, MAX_RETRY_WAIT_SECONDS, StateDetailsField, _recorded
from orchestrator.states import NAMED_STATES, State, StateType

_RECORD_FIELDS = frozenset(
    {"id", "flow_run", "task_key", "dynamic_key", "name", "tags", "task_version", "task_inputs"}
    | {"empirical_policy", "states"}
)
_STATE_FIELDS = frozenset({"type", "name", "message", "state_details", "data", "timestamp"})
_POLICY_FIELDS = frozenset({"retries", "retry_delay", "retry_jitter_factor"})
_INPUT_FIELDS = frozenset({"input_type", "id", "name"})
_INPUT_TYPES = frozenset({"task_run", "parameter", "constant"})
_STATE_TYPES = frozenset(t.value for t in StateType)
_DETAIL_STRINGS = StateDetailsField.STRINGS
_DETAIL_FLAGS = StateDetailsField.FLAGS
_DETAIL_TIMES = StateDetailsField.TIMES
_MAX_TAGS = 100


class _Refused(Exception):
    """Something this path does not check itself: the serializer decides."""


def records_accept(body: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """The validated task runs and later states of a record batch, or None to let the serializer decide."""
    try:
        return _records(body)
    except (_Refused, serializers.ValidationError, LookupError, ValueError, TypeError, AttributeError, OverflowError):
        return None


def _records(body: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if type(body) is not dict or not body.keys() <= {"task_runs", "states"}:
        raise _Refused
    task_runs = body.get("task_runs", [])
    later = body.get("states", [])
    if type(task_runs) is not list or type(later) is not list:
        raise _Refused
    if len(task_runs) > MAX_RECORDS or len(later) > MAX_RECORDS:
        raise _Refused
    zone = timezone.get_current_timezone()  # DRF's DateTimeField gives times in it
    runs = [_task_run(item, zone) for item in task_runs]
    states = []
    for item in later:
        if type(item) is not dict or item.keys() != {"task_run", "state"}:
            raise _Refused
        states.append({"task_run": _uuid(item["task_run"]), "state": _state(item["state"], zone)})
    return runs, states


def _task_run(item: Any, zone: tzinfo) -> dict[str, Any]:
    if type(item) is not dict or not item.keys() <= _RECORD_FIELDS:
        raise _Refused
    run: dict[str, Any] = {
        "id": _uuid(item["id"]),
        "flow_run": None if item["flow_run"] is None else _uuid(item["flow_run"]),
        "task_key": _text(item["task_key"], 500),
        "dynamic_key": _text(item["dynamic_key"], 200) if "dynamic_key" in item else "0",
    }
    if "name" in item:
        run["name"] = None if item["name"] is None else _name(item["name"])
    run["tags"] = _tags(item["tags"]) if "tags" in item else []
    if "task_version" in item:
        run["task_version"] = None if item["task_version"] is None else _text(item["task_version"], 200)
    run["task_inputs"] = _task_inputs(item["task_inputs"]) if "task_inputs" in item else {}
    if "empirical_policy" in item:
        run["empirical_policy"] = _policy(item["empirical_policy"])
    states = item["states"]
    if type(states) is not list or not 1 <= len(states) <= 10:
        raise _Refused
    run["states"] = [_state(state, zone) for state in states]
    return run


def _text(value: Any, max_length: int, *, blank: bool = False) -> str:
    """A string DRF's CharField keeps as it is: no surrounding spaces, no control or non-ASCII characters."""
    if type(value) is not str or len(value) > max_length or not value.isascii() or not value.isprintable():
        raise _Refused
    if value != value.strip() or (not value and not blank):
        raise _Refused
    return value


def _name(value: Any) -> str:
    text = _text(value, 200)
    if "/" in text:
        raise _Refused
    return text


def _tags(value: Any) -> list[str]:
    if type(value) is not list or len(value) > _MAX_TAGS:
        raise _Refused
    tags = [_text(tag, 200) for tag in value]
    if any("," in tag for tag in tags):
        raise _Refused
    return list(dict.fromkeys(tags))


def _uuid(value: Any) -> uuid.UUID:
    if type(value) is not str:
        raise _Refused
    return uuid.UUID(hex=value)


def _task_inputs(value: Any) -> dict[str, list[dict[str, Any]]]:
    if type(value) is not dict or len(value) > 10_000:
        raise _Refused
    inputs: dict[str, list[dict[str, Any]]] = {}
    for argument, items in value.items():
        if type(items) is not list or len(items) > 10_000:
            raise _Refused
        checked = []
        for entry in items:
            if (
                type(entry) is not dict
                or not entry.keys() <= _INPUT_FIELDS
                or entry.get("input_type") not in _INPUT_TYPES
            ):
                raise _Refused
            one: dict[str, Any] = {"input_type": entry["input_type"]}
            if "id" in entry:
                one["id"] = str(_uuid(entry["id"]))
            if "name" in entry:
                one["name"] = _text(entry["name"], 200)
            checked.append(one)
        inputs[argument] = checked
    return inputs


def _number(value: Any) -> bool:
    return type(value) is int or type(value) is float


def _policy(value: Any) -> dict[str, Any]:
    if type(value) is not dict or not value.keys() <= _POLICY_FIELDS:
        raise _Refused
    retries = value.get("retries", 0)
    if type(retries) is not int or not 0 <= retries <= 10_000:
        raise _Refused
    delay = value.get("retry_delay", 0)
    delays = delay if type(delay) is list else [delay]
    if len(delays) > 1_000 or not all(_number(d) and 0 <= d <= MAX_RETRY_WAIT_SECONDS for d in delays):
        raise _Refused
    policy: dict[str, Any] = {"retries": retries, "retry_delay": delay}
    jitter = None
    if "retry_jitter_factor" in value:
        jitter = value["retry_jitter_factor"]
        if jitter is not None:
            if not _number(jitter) or not 0 <= jitter <= 1_000:
                raise _Refused
            jitter = float(jitter)
        policy["retry_jitter_factor"] = jitter
    if max(delays, default=0) * (1 + (jitter or 0)) > MAX_RETRY_WAIT_SECONDS:
        raise _Refused
    return policy


def _state(value: Any, zone: tzinfo) -> State:
    if type(value) is not dict or not value.keys() <= _STATE_FIELDS or value.get("type") not in _STATE_TYPES:
        raise _Refused
    data: dict[str, Any] = {"type": value["type"]}
    if "name" in value:
        name = value["name"]
        if name is not None:
            name = _text(name, 32)
            if name in NAMED_STATES and NAMED_STATES[name] != data["type"]:
                raise _Refused
        data["name"] = name
    if "message" in value:
        message = value["message"]
        data["message"] = None if message is None else _text(message, MAX_MESSAGE, blank=True)
    data["state_details"] = _details(value["state_details"]) if "state_details" in value else {}
    if "data" in value:
        data["data"] = value["data"]
    data["timestamp"] = _time(value["timestamp"], zone)
    return _recorded(data)


def _details(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise _Refused
    if any(value.get(key) is not None for key in _DETAIL_TIMES):
        raise _Refused
    if any(key in value and type(value[key]) is not bool for key in _DETAIL_FLAGS):
        raise _Refused
    for key, max_length in _DETAIL_STRINGS.items():
        text = value.get(key)
        if text is not None and (type(text) is not str or len(text) > max_length):
            raise _Refused
    return dict(value)


def _time(value: Any, zone: tzinfo) -> datetime:
    """As DRF's DateTimeField reads an ISO 8601 time with an offset (Django's parse_datetime tries fromisoformat
    first); a time without an offset is left to it."""
    if type(value) is not str:
        raise _Refused
    parsed = datetime.fromisoformat(value)
    if parsed.utcoffset() is None:
        raise _Refused
    return parsed.astimezone(zone)

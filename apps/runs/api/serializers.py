"""Request and response shapes for flow runs, task runs and state proposals."""

from __future__ import annotations

import datetime
import operator
from collections.abc import Callable
from typing import Any

from django.db import models
from rest_framework import serializers

from apps.core.api.serializers import JSONObjectField, NameField, StrictSerializerMixin, TagsField, UUIDStringField
from apps.runs.models import FlowRun, TaskRun
from orchestrator.states import NAMED_STATES, State, StateType

MAX_MESSAGE = 20_000
# The longest wait a retry may be scheduled after (about 31 years): the engine adds it to now, and a datetime
# past year 9999 cannot be stored.
MAX_RETRY_WAIT_SECONDS = 10**9


def state_json(run) -> dict | None:
    state = run.state
    return state.to_json() if state else None


class StateDetailsField(JSONObjectField):
    """A state's details: any JSON object, but the keys the engine reads must have the type it expects."""

    TIMES = ("scheduled_time", "pause_timeout", "cache_expiration")
    FLAGS = ("refresh_cache", "pause_reschedule")
    STRINGS = {"cache_key": 500, "transition_id": 200}

    def to_internal_value(self, data):
        details = dict(super().to_internal_value(data))
        errors: dict[str, list[str]] = {}
        for key in self.TIMES:
            if details.get(key) is not None:
                try:
                    details[key] = serializers.DateTimeField().to_internal_value(details[key]).isoformat()
                except serializers.ValidationError as exc:
                    errors[key] = exc.detail
        for key in self.FLAGS:
            if key in details and not isinstance(details[key], bool):
                errors[key] = ["must be true or false"]
        for key, max_length in self.STRINGS.items():
            value = details.get(key)
            if value is not None and (not isinstance(value, str) or len(value) > max_length):
                errors[key] = [f"must be a string of at most {max_length} characters"]
        if errors:
            raise serializers.ValidationError(errors)
        return details


class StateProposalSerializer(StrictSerializerMixin, serializers.Serializer):
    type = serializers.ChoiceField(choices=[t.value for t in StateType])
    name = serializers.CharField(max_length=32, required=False, allow_null=True)
    message = serializers.CharField(max_length=MAX_MESSAGE, required=False, allow_null=True, allow_blank=True)
    state_details = StateDetailsField(required=False, default=dict)
    data = serializers.JSONField(required=False, allow_null=True)
    timestamp = serializers.DateTimeField(required=False, help_text="when the client proposed it (stale check)")

    def validate(self, attrs):
        name = attrs.get("name")
        if name and name in NAMED_STATES and NAMED_STATES[name] != attrs["type"]:
            raise serializers.ValidationError({"name": [f"{name} is a {NAMED_STATES[name].value} state"]})
        return attrs

    def to_state(self) -> State:
        return required_state(self.validated_data)


def state_from(data: dict | None) -> State | None:
    """The State a validated proposal describes (None when there is none)."""
    if not data:
        return None
    return State(
        type=StateType(data["type"]),
        name=data.get("name"),
        message=data.get("message"),
        state_details=dict(data.get("state_details") or {}),
        data=data.get("data"),
    )


def required_state(data: dict[str, Any]) -> State:
    """The State a validated proposal that must be there describes."""
    state = state_from(data)
    if state is None:
        raise serializers.ValidationError({"state": ["a state is required"]})
    return state


class SetStateSerializer(StrictSerializerMixin, serializers.Serializer):
    state = StateProposalSerializer()
    force = serializers.BooleanField(required=False, default=False)

    def proposal(self) -> tuple[State, bool, datetime.datetime | None]:
        """(the proposed state, force, when the client proposed it), from the already validated data."""
        state = self.validated_data["state"]
        return required_state(state), self.validated_data["force"], state.get("timestamp")


class EmpiricalPolicySerializer(StrictSerializerMixin, serializers.Serializer):
    retries = serializers.IntegerField(min_value=0, max_value=10_000, required=False, default=0)
    retry_delay = serializers.JSONField(required=False, default=0)
    retry_jitter_factor = serializers.FloatField(min_value=0, max_value=1_000, required=False, allow_null=True)

    def validate_retry_delay(self, value):
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) and len(value) > 1_000:
            raise serializers.ValidationError("at most 1000 delays")
        for item in values:
            if isinstance(item, bool) or not isinstance(item, int | float) or item < 0 or item > MAX_RETRY_WAIT_SECONDS:
                raise serializers.ValidationError(
                    f"must be a number of seconds from 0 to {MAX_RETRY_WAIT_SECONDS}, or a list of them"
                )
        return value

    def validate(self, attrs):
        delays = attrs.get("retry_delay")
        longest = max(delays, default=0) if isinstance(delays, list) else (delays or 0)
        jitter = attrs.get("retry_jitter_factor") or 0
        if longest * (1 + jitter) > MAX_RETRY_WAIT_SECONDS:
            raise serializers.ValidationError(
                {
                    "retry_jitter_factor": [
                        f"the longest retry delay with jitter would exceed {MAX_RETRY_WAIT_SECONDS} seconds"
                    ]
                }
            )
        return attrs


def _iso(value: datetime.datetime | None) -> str | None:
    """The same text DRF's DateTimeField renders (UTC, "Z" suffix), without its per-field machinery."""
    if value is None:
        return None
    text = value.astimezone(datetime.UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _reader(attname: str, convert: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    """Reads one attribute of a run (and converts it for JSON)."""
    if convert is None:
        return operator.attrgetter(attname)
    return lambda run: convert(getattr(run, attname))


class RunFieldsMixin(serializers.Serializer):
    """Renders runs with a per-class plan of plain attribute reads: lists of runs are the API's hottest path,
    and DRF's generic field-by-field rendering cost more than the database query."""

    state = serializers.SerializerMethodField()
    estimated_start_time_delta = serializers.SerializerMethodField()

    def get_state(self, run) -> dict | None:
        return state_json(run)

    def get_estimated_start_time_delta(self, run) -> float:
        return run.estimated_lateness()

    @classmethod
    def _plan(cls) -> list[tuple[str, Callable[[Any], Any]]]:
        plan: list[tuple[str, Callable[[Any], Any]]] | None = cls.__dict__.get("_render_plan")
        if plan is None:
            model = cls.Meta.model
            plan = []
            for name in cls.Meta.fields:
                if name == "state":
                    plan.append((name, state_json))
                elif name == "estimated_start_time_delta":
                    plan.append((name, lambda run: run.estimated_lateness()))
                elif name == "flow_name":
                    plan.append((name, lambda run: run.flow.name))
                elif name == "deployment":
                    plan.append((name, lambda run: _text(run.deployment_id)))
                else:
                    field = model._meta.get_field(name)
                    attname = field.attname
                    if field.is_relation or isinstance(field, models.UUIDField):
                        plan.append((name, _reader(attname, _text)))
                    elif isinstance(field, models.DateTimeField):
                        plan.append((name, _reader(attname, _iso)))
                    else:
                        plan.append((name, _reader(attname, None)))
            cls._render_plan = plan
        return plan

    def to_representation(self, run) -> dict:
        return {name: render(run) for name, render in self._plan()}


def _text(value) -> str | None:
    return None if value is None else str(value)


RUN_FIELDS = [
    "id",
    "name",
    "state",
    "state_type",
    "state_name",
    "tags",
    "run_count",
    "expected_start_time",
    "next_scheduled_start_time",
    "start_time",
    "end_time",
    "total_run_time",
    "estimated_start_time_delta",
    "empirical_policy",
    "created",
    "updated",
]


class FlowRunSerializer(RunFieldsMixin, serializers.ModelSerializer):
    deployment = serializers.UUIDField(source="deployment_id", read_only=True, allow_null=True)
    flow_name = serializers.CharField(source="flow.name", read_only=True)

    class Meta:
        model = FlowRun
        fields = [
            *RUN_FIELDS,
            "flow",
            "flow_name",
            "flow_version",
            "parameters",
            "idempotency_key",
            "parent_task_run",
            "deployment",
            "work_pool_name",
            "work_queue_name",
            "worker_name",
            "infrastructure_pid",
        ]
        read_only_fields = fields


class FlowRunCreateSerializer(StrictSerializerMixin, serializers.Serializer):
    flow = UUIDStringField()
    name = NameField(required=False, allow_null=True)
    parameters = JSONObjectField(required=False, default=dict)
    tags = TagsField()
    deployment = UUIDStringField(required=False, allow_null=True)
    parent_task_run = UUIDStringField(required=False, allow_null=True)
    idempotency_key = serializers.CharField(max_length=200, required=False, allow_null=True)
    work_pool_name = serializers.CharField(max_length=200, required=False, allow_null=True)
    work_queue_name = serializers.CharField(max_length=200, required=False, allow_null=True)
    flow_version = serializers.CharField(max_length=200, required=False, allow_null=True)
    empirical_policy = EmpiricalPolicySerializer(required=False)
    state = StateProposalSerializer(required=False)
    # Proposed right after `state`, in the same transaction (a client starting the run at once).
    next_state = StateProposalSerializer(required=False)


class FlowRunUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    name = NameField(required=False)
    tags = TagsField(required=False, default=None)
    parameters = JSONObjectField(required=False)
    # Recorded by the worker that claimed the run (docs/workers.md): who runs it, and its process.
    worker_name = NameField(required=False)
    infrastructure_pid = NameField(required=False)


class TaskRunSerializer(RunFieldsMixin, serializers.ModelSerializer):
    class Meta:
        model = TaskRun
        fields = [
            *RUN_FIELDS,
            "flow_run",
            "task_key",
            "dynamic_key",
            "task_version",
            "cache_key",
            "cache_expiration",
            "task_inputs",
            "flow_run_run_count",
        ]
        read_only_fields = fields


class TaskInputSerializer(StrictSerializerMixin, serializers.Serializer):
    input_type = serializers.ChoiceField(choices=["task_run", "parameter", "constant"])
    id = UUIDStringField(required=False)
    name = serializers.CharField(max_length=200, required=False)


class TaskRunCreateSerializer(StrictSerializerMixin, serializers.Serializer):
    flow_run = UUIDStringField(allow_null=True)
    task_key = serializers.CharField(max_length=500)
    dynamic_key = serializers.CharField(max_length=200, required=False, default="0")
    name = NameField(required=False, allow_null=True)
    tags = TagsField()
    cache_key = serializers.CharField(max_length=500, required=False, allow_null=True)
    cache_expiration = serializers.DateTimeField(required=False, allow_null=True)
    task_version = serializers.CharField(max_length=200, required=False, allow_null=True)
    task_inputs = serializers.DictField(
        child=serializers.ListField(child=TaskInputSerializer(), max_length=10_000),
        required=False,
        default=dict,
    )
    empirical_policy = EmpiricalPolicySerializer(required=False)
    state = StateProposalSerializer(required=False)
    # Proposed right after `state`, in the same transaction (a client starting the run at once).
    next_state = StateProposalSerializer(required=False)

    def validate_task_inputs(self, value):
        if len(value) > 10_000:
            raise serializers.ValidationError("too many inputs")
        return {
            argument: [{key: str(v) if key == "id" else v for key, v in item.items()} for item in items]
            for argument, items in value.items()
        }


MAX_RECORDS = 1_000


class RecordedStateSerializer(StateProposalSerializer):
    """A state a client already took a run through: its `timestamp` says when."""

    timestamp = serializers.DateTimeField()


class TaskRunRecordSerializer(TaskRunCreateSerializer):
    """A task run the client already ran (or started), with the states it went through, in order."""

    id = UUIDStringField()
    # Fields of the parent this shape does not take (DRF removes a field set to None).
    state = None  # type: ignore[assignment]
    next_state = None  # type: ignore[assignment]
    cache_key = None
    cache_expiration = None
    states = serializers.ListField(child=RecordedStateSerializer(), min_length=1, max_length=10)


class TaskRunStateRecordSerializer(StrictSerializerMixin, serializers.Serializer):
    task_run = UUIDStringField()
    state = RecordedStateSerializer()


class TaskRunsRecordSerializer(StrictSerializerMixin, serializers.Serializer):
    task_runs = serializers.ListField(
        child=TaskRunRecordSerializer(), required=False, default=list, max_length=MAX_RECORDS
    )
    states = serializers.ListField(
        child=TaskRunStateRecordSerializer(), required=False, default=list, max_length=MAX_RECORDS
    )

    def records(self) -> tuple[list[dict], list[dict]]:
        """The validated records with their states as State objects carrying the client's timestamps."""
        data = self.validated_data
        task_runs = [{**item, "states": [_recorded(state) for state in item["states"]]} for item in data["task_runs"]]
        states = [{"task_run": item["task_run"], "state": _recorded(item["state"])} for item in data["states"]]
        return task_runs, states


def _recorded(data: dict[str, Any]) -> State:
    state = required_state(data)
    state.timestamp = data["timestamp"]
    return state


class TaskRunUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    name = NameField(required=False)
    tags = TagsField(required=False, default=None)


class StateRecordSerializer(serializers.Serializer):
    def to_representation(self, instance) -> dict:
        return instance.as_state().to_json()

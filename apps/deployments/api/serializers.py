"""Request and response shapes for deployments, their schedules and ad hoc runs."""

from __future__ import annotations

from datetime import UTC

from rest_framework import serializers

from apps.core.api.serializers import (
    JSONObjectField,
    NameField,
    StrictSerializerMixin,
    TagsField,
    UUIDStringField,
    validate_name,
)
from apps.deployments import schedules, services
from apps.deployments.models import CollisionStrategy, Deployment, DeploymentSchedule
from apps.runs.api.serializers import EmpiricalPolicySerializer

MAX_SCHEDULES = 100
MAX_DESCRIPTION = 20_000
# A code prefix in a storage block (orchestrator/sdk/code_storage.py): a worker makes it a folder name.
STORAGE_PATH_PATTERN = r"^[0-9a-f]{16,64}$"


class DeploymentScheduleSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeploymentSchedule
        fields = ["id", "schedule", "active", "created", "updated"]
        read_only_fields = fields


class DeploymentSerializer(serializers.ModelSerializer):
    flow_name = serializers.CharField(source="flow.name", read_only=True)
    schedules = DeploymentScheduleSerializer(many=True, read_only=True)

    class Meta:
        model = Deployment
        fields = [
            "id",
            "name",
            "flow",
            "flow_name",
            "description",
            "version",
            "entrypoint",
            "path",
            "storage_block",
            "storage_path",
            "parameters",
            "parameter_openapi_schema",
            "tags",
            "work_pool_name",
            "work_queue_name",
            "paused",
            "concurrency_limit",
            "collision_strategy",
            "empirical_policy",
            "schedules",
            "created",
            "updated",
        ]
        read_only_fields = fields


class ScheduleField(JSONObjectField):
    """A schedule object, normalised; an error names the key inside it (`schedule.cron`)."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            return schedules.normalize(value)
        except schedules.ScheduleError as exc:
            if exc.field:
                raise serializers.ValidationError({exc.field: [exc.message]}) from None
            raise serializers.ValidationError(exc.message) from None


class ScheduleWriteSerializer(StrictSerializerMixin, serializers.Serializer):
    schedule = ScheduleField()
    active = serializers.BooleanField(required=False, default=True)


class ScheduleUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    schedule = ScheduleField(required=False)
    active = serializers.BooleanField(required=False)


def validate_block_slug(value: str) -> str:
    """A block named as `type/name`, e.g. `remote-file-system/code` (apps/blocks)."""
    block_type, slash, name = value.partition("/")
    if not slash or not block_type.strip():
        raise serializers.ValidationError("must name a block as TYPE/NAME, e.g. remote-file-system/code")
    validate_name(name)
    return value


def _text(max_length: int) -> serializers.CharField:
    return serializers.CharField(max_length=max_length, required=False, allow_null=True, allow_blank=True)


class DeploymentFieldsSerializer(StrictSerializerMixin, serializers.Serializer):
    """The fields a redeploy or a PATCH may set; a field left out keeps its value."""

    description = _text(MAX_DESCRIPTION)
    version = _text(200)
    entrypoint = _text(1000)
    path = _text(1000)
    storage_block = serializers.CharField(
        max_length=200, required=False, allow_null=True, validators=[validate_block_slug]
    )
    storage_path = serializers.RegexField(
        STORAGE_PATH_PATTERN,
        max_length=64,
        required=False,
        allow_null=True,
        error_messages={"invalid": "must be the hex digits of a content hash (what `deploy --storage` records)"},
    )
    parameters = JSONObjectField(required=False)
    parameter_openapi_schema = JSONObjectField(required=False, allow_null=True)
    tags = TagsField(required=False, default=None)
    work_pool_name = NameField(required=False, allow_null=True)
    work_queue_name = NameField(required=False, allow_null=True)
    paused = serializers.BooleanField(required=False)
    concurrency_limit = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=1_000_000)
    collision_strategy = serializers.ChoiceField(choices=CollisionStrategy.values, required=False)
    empirical_policy = EmpiricalPolicySerializer(required=False)
    schedules = serializers.ListField(child=ScheduleWriteSerializer(), required=False, max_length=MAX_SCHEDULES)

    def validate(self, attrs):
        # Checked here too (the service checks the stored values merged in), so a bad schema or default
        # is refused before anything, such as the flow named by flow_name, is created.
        schema = attrs.get("parameter_openapi_schema")
        if schema is not None:
            services.parameters_check_schema(schema=schema)
        if schema is not None and "parameters" in attrs:
            services.parameters_validate(parameters=attrs["parameters"], schema=schema, require_all=False)
        if attrs.get("storage_path") and not attrs.get("storage_block"):
            raise serializers.ValidationError(
                {"storage_path": ["a code prefix is sent with the storage block that holds it (storage_block)"]}
            )
        return attrs

    def values(self) -> dict:
        """The deployment fields given (schedules apart)."""
        return {
            key: value
            for key, value in self.validated_data.items()
            if key != "schedules" and not (key == "tags" and value is None)
        }

    def schedules_given(self) -> list[dict] | None:
        return self.validated_data.get("schedules")


class DeploymentWriteSerializer(DeploymentFieldsSerializer):
    flow = UUIDStringField(required=False)
    flow_name = NameField(required=False)
    name = NameField()

    def validate(self, attrs):
        if ("flow" in attrs) == ("flow_name" in attrs):
            raise serializers.ValidationError({"flow": ["give either flow (an id) or flow_name"]})
        return super().validate(attrs)

    def values(self) -> dict:
        return {key: value for key, value in super().values().items() if key not in ("flow", "flow_name", "name")}


class CreateFlowRunSerializer(StrictSerializerMixin, serializers.Serializer):
    parameters = JSONObjectField(required=False, default=dict)
    tags = TagsField()
    scheduled_time = serializers.DateTimeField(required=False, allow_null=True)
    name = NameField(required=False, allow_null=True)
    idempotency_key = serializers.CharField(max_length=200, required=False, allow_null=True)

    def validate_scheduled_time(self, value):
        if value is None:
            return value
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise serializers.ValidationError("this time is out of range once converted to UTC") from None

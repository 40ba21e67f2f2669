"""Request and response shapes for work pools, queues, workers and a worker's poll and heartbeat."""

from __future__ import annotations

from datetime import UTC

from rest_framework import serializers

from apps.core.api.serializers import NameField, StrictSerializerMixin, UUIDStringField
from apps.work_pools.models import Worker, WorkPool, WorkPoolType, WorkQueue

MAX_DESCRIPTION = 20_000
MAX_LIMIT = 1_000_000
MAX_POLL = 1_000
MAX_HEARTBEAT_RUNS = 10_000


class WorkPoolSerializer(serializers.ModelSerializer):
    worker_command = serializers.CharField(read_only=True)

    class Meta:
        model = WorkPool
        fields = [
            "id",
            "name",
            "type",
            "description",
            "concurrency_limit",
            "paused",
            "worker_command",
            "created",
            "updated",
        ]
        read_only_fields = fields


class WorkQueueSerializer(serializers.ModelSerializer):
    work_pool_name = serializers.CharField(source="pool.name", read_only=True)

    class Meta:
        model = WorkQueue
        fields = [
            "id",
            "name",
            "work_pool_name",
            "description",
            "priority",
            "concurrency_limit",
            "paused",
            "created",
            "updated",
        ]
        read_only_fields = fields


class WorkerSerializer(serializers.ModelSerializer):
    work_pool_name = serializers.CharField(source="pool.name", read_only=True)
    status = serializers.CharField(read_only=True)

    class Meta:
        model = Worker
        fields = ["id", "name", "work_pool_name", "last_heartbeat_at", "status", "created", "updated"]
        read_only_fields = fields


def _description() -> serializers.CharField:
    return serializers.CharField(max_length=MAX_DESCRIPTION, required=False, allow_null=True, allow_blank=True)


def _concurrency_limit() -> serializers.IntegerField:
    return serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=MAX_LIMIT)


class WorkPoolUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    description = _description()
    concurrency_limit = _concurrency_limit()
    paused = serializers.BooleanField(required=False)


class WorkPoolCreateSerializer(WorkPoolUpdateSerializer):
    name = NameField()
    type = serializers.ChoiceField(choices=WorkPoolType.values, required=False, default=WorkPoolType.PROCESS)


class WorkQueueUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    description = _description()
    priority = serializers.IntegerField(required=False, min_value=1, max_value=MAX_LIMIT)
    concurrency_limit = _concurrency_limit()
    paused = serializers.BooleanField(required=False)


class WorkQueueCreateSerializer(WorkQueueUpdateSerializer):
    name = NameField()


class GetScheduledFlowRunsSerializer(StrictSerializerMixin, serializers.Serializer):
    work_queue_names = serializers.ListField(child=NameField(), required=False, allow_null=True, max_length=100)
    scheduled_before = serializers.DateTimeField(required=False, allow_null=True)
    limit = serializers.IntegerField(required=False, default=10, min_value=1, max_value=MAX_POLL)
    worker_name = NameField(required=False, allow_null=True)

    def validate_scheduled_before(self, value):
        if value is None:
            return value
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise serializers.ValidationError("this time is out of range once converted to UTC") from None


class WorkerHeartbeatSerializer(StrictSerializerMixin, serializers.Serializer):
    name = NameField()
    flow_run_ids = serializers.ListField(
        child=UUIDStringField(), required=False, default=list, max_length=MAX_HEARTBEAT_RUNS
    )

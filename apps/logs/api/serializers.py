from django.utils import timezone
from rest_framework import serializers

from apps.core.api.serializers import StrictSerializerMixin, UUIDStringField
from apps.logs.models import Log

MAX_BATCH = 5_000


class LogSerializer(serializers.ModelSerializer):
    # Which task run wrote the line, by name, so a reader can tell five "Finished in state Completed()" apart.
    task_run_name = serializers.CharField(source="task_run.name", read_only=True, default=None)

    class Meta:
        model = Log
        fields = ["id", "flow_run", "task_run", "task_run_name", "name", "level", "message", "timestamp", "created"]
        read_only_fields = fields


class LogCreateSerializer(StrictSerializerMixin, serializers.Serializer):
    flow_run = UUIDStringField(required=False, allow_null=True)
    task_run = UUIDStringField(required=False, allow_null=True)
    name = serializers.CharField(max_length=200, required=False, default="orchestrator")
    level = serializers.IntegerField(min_value=0, max_value=100, required=False, default=20)
    message = serializers.CharField(max_length=1_000_000, allow_blank=True, trim_whitespace=False)
    timestamp = serializers.DateTimeField(required=False, default=timezone.now)

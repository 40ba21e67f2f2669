from rest_framework import serializers

from apps.core.api.serializers import NameField, StrictSerializerMixin, TagsField
from apps.flows.models import Flow


class FlowSerializer(serializers.ModelSerializer):
    class Meta:
        model = Flow
        fields = ["id", "name", "tags", "created", "updated"]
        read_only_fields = fields


class FlowWriteSerializer(StrictSerializerMixin, serializers.Serializer):
    name = NameField()
    tags = TagsField()


class FlowUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    name = NameField(required=False)
    tags = TagsField(required=False, default=None)

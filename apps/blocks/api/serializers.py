"""Request and response shapes for block types and block documents."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.blocks.models import BlockDocument
from apps.core.api.serializers import NameField, StrictSerializerMixin
from orchestrator.block_types import BlockData


class BlockTypeSerializer(serializers.Serializer):
    slug = serializers.CharField()
    version = serializers.IntegerField()
    description = serializers.CharField()
    schema = serializers.DictField(help_text="the JSON schema of the fields, with `secret_fields` listed")

    @staticmethod
    def of(block_type: type[BlockData]) -> dict[str, Any]:
        return {
            "slug": block_type.slug,
            "version": block_type.version,
            "description": block_type.description,
            "schema": block_type.schema_for_forms(),
        }


class BlockDocumentSerializer(serializers.ModelSerializer):
    """A document; `data` is given by the view (masked, or with the secrets for an admin who asked)."""

    data = serializers.SerializerMethodField()

    class Meta:
        model = BlockDocument
        fields = ["id", "block_type", "block_type_version", "name", "data", "created", "updated"]
        read_only_fields = fields

    def get_data(self, document: BlockDocument) -> dict[str, Any]:
        return self.context["data_of"](document)


class BlockDocumentCreateSerializer(StrictSerializerMixin, serializers.Serializer):
    block_type = serializers.CharField(max_length=100)
    name = NameField()
    data = serializers.JSONField(help_text="the block type's fields")
    overwrite = serializers.BooleanField(required=False, default=False)


class BlockDocumentUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    data = serializers.JSONField(help_text="every field of the block type; a secret sent as ******** keeps its value")

"""API key shapes: what is shown of a key (never its secret), and what creating one takes."""

from rest_framework import serializers

from apps.accounts.models import ApiKey, Scope
from apps.accounts.services import MAX_EXPIRY_DAYS
from apps.core.api.serializers import StrictSerializerMixin


class ApiKeySerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    status = serializers.CharField(read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "scope", "owner", "status", "expires_at", "last_used_at", "revoked_at"]
        fields += ["created"]
        read_only_fields = fields


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="the key itself: shown in this answer only")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class ApiKeyCreateSerializer(StrictSerializerMixin, serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scope = serializers.ChoiceField(choices=Scope.choices, default=Scope.WRITE)
    expires_in_days = serializers.IntegerField(min_value=1, max_value=MAX_EXPIRY_DAYS, required=False)

    def validate_name(self, value: str) -> str:
        if "/" in value or not value.strip():
            raise serializers.ValidationError("a name is some characters, without '/'")
        return value.strip()

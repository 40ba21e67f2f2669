"""Serializer building blocks shared by every app's API."""

from __future__ import annotations

import copy
import re

from rest_framework import serializers

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_TAGS = 100


class StrictSerializerMixin:
    """Refuse fields the endpoint does not know, naming them, instead of silently dropping them."""

    def get_fields(self):
        # DRF deep-copies every declared field for each serializer instance, re-running each field's __init__: a
        # fifth of a state change's time. A shallow copy is enough here: fields keep no per-request state, and
        # bind() gives the copy its own name and parent.
        return {name: copy.copy(field) for name, field in self._declared_fields.items()}

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": [f"expected a JSON object, got {type(data).__name__}"]}
            )
        writable = {name for name, field in self.fields.items() if not field.read_only}
        unknown = sorted(set(data) - writable)
        if unknown:
            raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
        return super().to_internal_value(data)


def validate_name(value: str) -> str:
    if _CONTROL.search(value):
        raise serializers.ValidationError("may not contain control characters")
    if "/" in value:
        raise serializers.ValidationError("may not contain '/'")
    if not value.strip():
        raise serializers.ValidationError("may not be blank")
    return value


class NameField(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 200)
        super().__init__(**kwargs)
        self.validators.append(validate_name)


def validate_tag(value: str) -> str:
    """Tags are matched by `?tags=a,b` filters and concurrency limits, so they cannot hold commas."""
    if _CONTROL.search(value) or "," in value:
        raise serializers.ValidationError("tags may not contain commas or control characters")
    return value


class TagField(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 200)
        super().__init__(**kwargs)
        self.validators.append(validate_tag)


class TagsField(serializers.ListField):
    def __init__(self, **kwargs):
        kwargs.setdefault("child", TagField())
        kwargs.setdefault("max_length", MAX_TAGS)
        kwargs.setdefault("required", False)
        kwargs.setdefault("default", list)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        return list(dict.fromkeys(super().to_internal_value(data)))


class JSONObjectField(serializers.JSONField):
    """A JSON object (a dict), e.g. parameters."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be a JSON object")
        return value


class UUIDStringField(serializers.UUIDField):
    """An id given as a string; DRF's UUIDField also takes integers, which would turn `true` or `5` into an id."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)

"""Serializer building blocks shared by every app's API."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from typing import Any

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
        not_text = {name: [problem] for name, problem in _strings_refused(self.fields, data)}
        if not_text:
            raise serializers.ValidationError(not_text)
        return super().to_internal_value(data)


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _strings_refused(fields: Mapping[str, serializers.Field], data: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Text fields given another JSON type: DRF's CharField would turn 12345678 into "12345678" silently."""
    for name, field in fields.items():
        if name not in data or field.read_only:
            continue
        value = data[name]
        if isinstance(field, serializers.CharField) and value is not None and not isinstance(value, str):
            yield name, f"must be a string, got {_json_type(value)}"
        elif isinstance(field, serializers.ListField) and isinstance(field.child, serializers.CharField):
            if isinstance(value, list):
                for item in value:
                    if item is not None and not isinstance(item, str):
                        yield name, f"must be a list of strings, got {_json_type(item)} in it"
                        break


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

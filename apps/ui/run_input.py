"""The Resume form of a run that paused for typed input: Django form fields generated from the JSON schema the
pause asked for (`state_details["run_input_schema"]` of the Paused state), checked again against the whole schema
on the server, so what the flow receives always matches what it asked for."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from apps.core.errors import InvalidInput
from apps.deployments.services import parameters_validate

SCHEMA_KEY = "run_input_schema"


def input_schema(state_details: dict[str, Any] | None) -> dict[str, Any] | None:
    """The object schema a pause asked for, or None when it asked for no input."""
    schema = (state_details or {}).get(SCHEMA_KEY)
    if isinstance(schema, dict) and isinstance(schema.get("properties"), dict) and schema["properties"]:
        return schema
    return None


class RunInputForm(forms.Form):
    """One field per property of the schema: strings, integers, numbers, booleans, enums; arrays and objects
    as JSON text."""

    def __init__(self, schema: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schema = schema
        required = set(schema.get("required") or [])
        for name, spec in schema["properties"].items():
            self.fields[name] = _field(spec if isinstance(spec, dict) else {}, required=name in required)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        value = {name: cleaned[name] for name in self.fields if cleaned.get(name) not in (None, "")}
        try:
            parameters_validate(parameters=value, schema=self.schema, require_all=True, field="input")
        except InvalidInput as exc:
            field = (exc.field or "").removeprefix("input").lstrip(".").split(".")[0]
            self.add_error(field if field in self.fields else None, exc.message)
        self.run_input = value
        return cleaned


def _field(spec: dict[str, Any], *, required: bool) -> forms.Field:
    kind = spec.get("type")
    options: dict[str, Any] = {
        "required": required and kind != "boolean",
        "label": spec.get("title") or None,
        "help_text": spec.get("description") or "",
        "initial": spec.get("default"),
    }
    if isinstance(spec.get("enum"), list):
        choices = [(json.dumps(item), str(item)) for item in spec["enum"]]
        options["initial"] = None if spec.get("default") is None else json.dumps(spec["default"])
        return forms.TypedChoiceField(choices=[("", "---"), *choices], coerce=json.loads, empty_value=None, **options)
    if kind == "integer":
        return forms.IntegerField(**options)
    if kind == "number":
        return forms.FloatField(**options)
    if kind == "boolean":
        return forms.BooleanField(**options)
    if kind in ("array", "object"):
        return forms.JSONField(widget=forms.Textarea(attrs={"rows": 3}), **options)
    return forms.CharField(max_length=spec.get("maxLength") or 10_000, **options)

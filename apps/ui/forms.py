"""The Run form of a deployment page, generated from the deployment's parameter JSON schema.

Each parameter becomes a field of the kind its schema names: strings, integers, numbers, booleans, enums (a
choice), and anything else (arrays, objects, unions, untyped) a JSON text area. Defaults (the deployment's,
else the schema's) fill the fields; a parameter that is required and has no default is marked required. The
form only turns text into values: the schema itself is checked by `parameters_validate` in the service, and
its error is put back on the field it names.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django import forms
from django.utils import timezone

from apps.deployments.models import Deployment

JSON_KINDS = ("array", "object")


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """A property's schema with a local `$ref` (pydantic's `#/$defs/Name`) replaced by what it points at, and
    `Optional[X]` (anyOf X or null) reduced to X."""
    reference = schema.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/"):
        target: Any = root
        for part in reference[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        if isinstance(target, dict):
            schema = {**target, **{key: value for key, value in schema.items() if key != "$ref"}}
    options = schema.get("anyOf")
    if isinstance(options, list):
        not_null = [option for option in options if not (isinstance(option, dict) and option.get("type") == "null")]
        if len(not_null) == 1 and len(options) == 2 and isinstance(not_null[0], dict):
            merged = {key: value for key, value in schema.items() if key != "anyOf"}
            return {**_resolve(not_null[0], root), **merged}
    return schema


# What an empty JSON field gives: the parameter is left out (its default applies), while `null` typed is None.
EMPTY = object()


class JSONTextField(forms.CharField):
    """Any JSON value typed as text (arrays, objects, values of no simpler kind)."""

    widget = forms.Textarea(attrs={"rows": 3, "cols": 60, "class": "vLargeTextField"})

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        if text in self.empty_values:
            return EMPTY  # left empty, unlike a typed `null`
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None

    def validate(self, value: Any) -> None:
        if value is EMPTY and self.required:
            raise forms.ValidationError(self.error_messages["required"], code="required")

    def prepare_value(self, value: Any) -> Any:
        if value is EMPTY:
            return ""
        if isinstance(value, str):
            return value  # text the user typed (shown back as is when the form has errors)
        return json.dumps(value, indent=2) if value is not None else ""


class EnumField(forms.ChoiceField):
    """A choice among the schema's `enum` values; the options are their JSON texts, so any JSON value works."""

    def __init__(self, *, values: list[Any], **kwargs: Any) -> None:
        choices = [(json.dumps(value), value if isinstance(value, str) else json.dumps(value)) for value in values]
        if not kwargs.get("required", True):
            choices = [("", "---------"), *choices]
        super().__init__(choices=choices, **kwargs)

    def clean(self, value: Any) -> Any:
        text = super().clean(value)
        return None if text in ("", None) else json.loads(text)


def _field_for(schema: dict[str, Any], *, label: str, required: bool, initial: Any) -> forms.Field:
    help_text = schema.get("description") or ""
    common: dict[str, Any] = {"label": label, "required": required, "help_text": help_text}
    kind = schema.get("type")
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return EnumField(values=schema["enum"], initial=None if initial is None else json.dumps(initial), **common)
    if kind == "boolean":
        # An unticked box is False: the value is always given, so the field is never "missing".
        return forms.BooleanField(**{**common, "required": False}, initial=bool(initial))
    if kind == "integer":
        return forms.IntegerField(initial=initial, **common)
    if kind == "number":
        return forms.FloatField(initial=initial, **common)
    if kind == "string":
        return forms.CharField(initial=initial, strip=False, **common)
    return JSONTextField(initial=initial, **common)


class ParametersForm(forms.Form):
    """The parameters of one run; `parameters()` gives the values the user set (empty optional fields left out,
    so the deployment's defaults apply)."""

    prefix = "parameters"

    def __init__(self, *args: Any, deployment: Deployment, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema = deployment.parameter_openapi_schema or {}
        defaults = deployment.parameters or {}
        found = schema.get("properties")
        properties: dict[str, Any] = found if isinstance(found, dict) else {}
        required = set(schema.get("required") or [])
        ordered = sorted(
            properties.items(),
            key=lambda item: (item[1].get("position", 1_000_000) if isinstance(item[1], dict) else 1_000_000, item[0]),
        )
        self.parameter_names: list[str] = []
        for name, raw in ordered:
            property_schema = _resolve(raw if isinstance(raw, dict) else {}, schema)
            initial = defaults.get(name, property_schema.get("default"))
            has_default = name in defaults or "default" in property_schema
            self.fields[name] = _field_for(
                property_schema,
                label=str(property_schema.get("title") or name),
                required=name in required and not has_default,
                initial=initial,
            )
            self.parameter_names.append(name)
        # A deployment without a schema (or parameters outside it): its defaults as one JSON object to edit.
        self.free_form = not properties
        if self.free_form:
            self.fields["json"] = JSONTextField(
                label="Parameters (JSON object)",
                required=False,
                initial=defaults,
                help_text="this deployment has no parameter schema: the keys given override its default parameters",
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.free_form:
            value = cleaned.get("json")
            if value is not EMPTY and "json" not in self.errors and not isinstance(value, dict):
                self.add_error("json", "must be a JSON object")
        return cleaned

    def parameters(self) -> dict[str, Any]:
        if self.free_form:
            value = self.cleaned_data.get("json")
            return dict(value) if isinstance(value, dict) else {}
        values: dict[str, Any] = {}
        for name in self.parameter_names:
            value = self.cleaned_data.get(name)
            field = self.fields[name]
            if isinstance(field, forms.BooleanField):
                values[name] = bool(value)
            elif value is EMPTY or (value in (None, "") and not isinstance(field, JSONTextField)):
                continue  # left empty: the deployment's default applies (or the service names it as missing)
            else:
                values[name] = value
        return values

    def add_parameter_error(self, path: str, message: str) -> None:
        """Put a service error (`parameters.name[0].key`) on the field it names, or on the form."""
        rest = path.removeprefix("parameters")
        name = rest.lstrip(".").split(".")[0].split("[")[0] if rest else ""
        if name and name in self.fields and not self.free_form:
            detail = rest.lstrip(".")[len(name) :]
            self.add_error(name, f"{message}" + (f" (at {name}{detail})" if detail else ""))
        elif self.free_form:
            self.add_error("json", f"{path}: {message}")
        else:
            self.add_error(None, f"{path}: {message}")


class RunOptionsForm(forms.Form):
    """The run itself: extra tags and an optional start time (now when empty)."""

    prefix = "run"

    tags = forms.CharField(required=False, help_text="comma-separated; added to the deployment's tags", max_length=2000)
    scheduled_time = forms.DateTimeField(
        required=False,
        label="Start at (UTC)",
        help_text="empty: now",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
    )

    def clean_tags(self) -> list[str]:
        tags = [tag.strip() for tag in self.cleaned_data["tags"].split(",") if tag.strip()]
        for tag in tags:
            if len(tag) > 200:
                raise forms.ValidationError("a tag may have at most 200 characters")
        return list(dict.fromkeys(tags))

    def clean_scheduled_time(self) -> datetime | None:
        value = self.cleaned_data["scheduled_time"]
        if value is not None and timezone.is_naive(value):
            value = timezone.make_aware(value, timezone.get_current_timezone())
        return value

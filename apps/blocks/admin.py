"""Admin for block documents: the form is made from the block type's schema (orchestrator/block_types.py).

Adding starts with a page that lists the block types (read-only: slug, version, fields, description) and links to
the add form of each (`?block_type=smtp`). Secret fields are password inputs that never show the stored value; left
empty on a change, they keep it. Writes go through the services, so the admin encrypts as the API does.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from pydantic import ValidationError as DataValidationError

from apps.blocks import selectors, services
from apps.blocks.models import BlockDocument
from apps.core.admin import RefusedDeleteAdminMixin
from orchestrator.block_types import BLOCK_TYPES, BlockData, data_validate

KEEP_HELP = "Secret: never shown. Left empty, the stored value is kept."


def _nullable(prop: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """A property's schema without its `null` alternative (`str | None`), and whether null was allowed."""
    variants = prop.get("anyOf")
    if not variants:
        return prop, False
    others = [variant for variant in variants if variant.get("type") != "null"]
    if len(others) != 1:
        return prop, len(others) != len(variants)
    return {**prop, **others[0]}, len(others) != len(variants)


def form_field(prop: dict[str, Any], *, required: bool, secret: bool, editing: bool) -> forms.Field:
    """The form field for one property of a block type's JSON schema: string, integer, boolean, enum, or JSON."""
    prop, nullable = _nullable(prop)
    required = required and not nullable and not (secret and editing)
    kind = prop.get("type")
    help_text = KEEP_HELP if secret and editing else prop.get("description", "")
    common: dict[str, Any] = {"required": required, "help_text": help_text, "label": prop.get("title")}
    if "default" in prop and not secret:
        common["initial"] = prop["default"]
    field: forms.Field
    if "enum" in prop:
        field = forms.ChoiceField(choices=[(value, value) for value in prop["enum"]], **common)
    elif kind == "string":
        field = forms.CharField(
            min_length=prop.get("minLength"), max_length=prop.get("maxLength"), strip=not secret, **common
        )
    elif kind == "integer":
        field = forms.IntegerField(min_value=prop.get("minimum"), max_value=prop.get("maximum"), **common)
    elif kind == "boolean":
        field = forms.BooleanField(**{**common, "required": False})
    else:
        field = forms.JSONField(**common)
    if secret:
        field.widget = forms.PasswordInput(render_value=False)
    return field


class BlockDocumentForm(forms.ModelForm):
    """The fields of one block type (subclasses set `block_type`), plus the document's name when adding."""

    block_type: type[BlockData] = BlockData
    block_fields: list[str] = []

    class Meta:
        model = BlockDocument
        fields = ["name"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.instance.block_type = self.block_type.slug
        if self.instance.pk:
            for name in self.block_fields:
                if name in self.instance.data:
                    self.initial[name] = self.instance.data[name]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if "/" in name:
            raise forms.ValidationError("may not contain '/'")
        taken = BlockDocument.objects.filter(block_type=self.block_type.slug, name=name).exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(f"a {self.block_type.slug} block named {name!r} already exists")
        return name

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        secret_fields = set(self.block_type.secret_fields())
        stored = selectors.block_document_secrets(document=self.instance) if self.instance.pk else {}
        data: dict[str, Any] = {}
        for name in self.block_fields:
            if name in self.errors:
                continue
            value = cleaned.get(name)
            if name in secret_fields and value in (None, ""):
                if name in stored:
                    data[name] = stored[name]  # left empty on a change: keep
                continue
            if value in (None, "") and not self.fields[name].required and not isinstance(value, bool):
                continue  # the type's default
            data[name] = value
        try:
            self.block_data = data_validate(self.block_type.slug, data)
        except DataValidationError as exc:
            for error in exc.errors():
                location = error["loc"]
                field = str(location[0]) if location and str(location[0]) in self.fields else None
                self.add_error(field, error["msg"])
        return cleaned


def block_form_class(block_type: type[BlockData], *, editing: bool) -> type[BlockDocumentForm]:
    schema = block_type.model_json_schema()
    required = set(schema.get("required", []))
    secret_fields = set(block_type.secret_fields())
    fields = {
        name: form_field(prop, required=name in required, secret=name in secret_fields, editing=editing)
        for name, prop in schema.get("properties", {}).items()
    }
    meta = type("Meta", (BlockDocumentForm.Meta,), {"fields": [] if editing else ["name"]})
    attributes = {**fields, "Meta": meta, "block_type": block_type, "block_fields": list(fields)}
    return type(f"{block_type.__name__}Form", (BlockDocumentForm,), attributes)


@admin.register(BlockDocument)
class BlockDocumentAdmin(RefusedDeleteAdminMixin, admin.ModelAdmin):
    # Deleting a block a deployment or a run's result uses is refused with the reason.
    list_display = ["name", "block_type", "block_type_version", "updated"]
    list_filter = ["block_type"]
    search_fields = ["name"]

    def _block_type(self, request: HttpRequest, obj: BlockDocument | None) -> type[BlockData] | None:
        slug = obj.block_type if obj is not None else request.GET.get("block_type", "")
        return BLOCK_TYPES.get(slug)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        block_type = self._block_type(request, obj)
        if block_type is None:  # a document of a type this version no longer ships: its page is read-only
            return super().get_form(request, obj, change=change, fields=[])
        return block_form_class(block_type, editing=obj is not None)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        return [
            "name",
            "block_type",
            "block_type_version",
            "masked_data",
            "used_by",
            "results_of",
            "created",
            "updated",
        ]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        form = self.get_form(request, obj)
        readonly = self.get_readonly_fields(request, obj)
        return [(None, {"fields": [*readonly[:3], *form.base_fields, *readonly[3:]]})]

    @admin.display(description="Data (secrets masked)")
    def masked_data(self, document: BlockDocument) -> str:
        data = selectors.block_document_data(document=document)
        return format_html("<pre>{}</pre>", json.dumps(data, indent=2))

    @admin.display(description="Storage of deployments")
    def used_by(self, document: BlockDocument) -> str:
        return ", ".join(selectors.deployments_using(document=document)) or "none"

    @admin.display(description="Holds results of")
    def results_of(self, document: BlockDocument) -> str:
        runs, more = selectors.runs_with_results_in(document=document)
        return ", ".join(runs) + (" and more" if more else "") if runs else "none"

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        block_type = self._block_type(request, None)
        if block_type is None:
            return self.choose_type_view(request)
        context = {**(extra_context or {}), "title": f"Add {block_type.slug} block"}
        return super().add_view(request, form_url, context)

    def choose_type_view(self, request: HttpRequest) -> HttpResponse:
        """The first step of adding: the block types, each with its fields and a link to its form."""
        if not self.has_add_permission(request):
            return HttpResponseRedirect(reverse("admin:blocks_blockdocument_changelist"))
        add_url = reverse("admin:blocks_blockdocument_add")
        types = [
            {
                "slug": block_type.slug,
                "version": block_type.version,
                "description": block_type.description,
                "fields": [
                    f"{name} (secret)" if name in block_type.secret_fields() else name
                    for name in block_type.model_fields
                ],
                "add_url": f"{add_url}?block_type={block_type.slug}",
            }
            for block_type in selectors.block_types_all()
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Add block: choose its type",
            "block_types": types,
        }
        return TemplateResponse(request, "admin/blocks/blockdocument/choose_type.html", context)

    def save_model(self, request: HttpRequest, obj: BlockDocument, form: Any, change: bool) -> None:
        data = form.block_data
        if change:
            saved = services.block_document_update(document=obj, data=data)
        else:
            saved = services.block_document_create(block_type=obj.block_type, name=obj.name, data=data)[0]
        obj.pk = saved.pk
        obj.data, obj.encrypted_secrets = saved.data, saved.encrypted_secrets
        obj.block_type_version, obj.created, obj.updated = saved.block_type_version, saved.created, saved.updated
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: BlockDocument) -> None:
        services.block_document_delete(document=obj)

"""Writes of block documents: create (or overwrite), update, delete, and re-encrypt all after a key rotation.

Data is validated against its block type in full (orchestrator/block_types.py). A secret value sent back as the
mask (`"********"`, what a read shows) keeps the stored value, so a form's or a client's round trip loses nothing.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from pydantic import ValidationError as DataValidationError

from apps.blocks import encryption, selectors
from apps.blocks.models import BlockDocument
from apps.core.errors import Conflict, InvalidInput
from orchestrator.block_types import BLOCK_TYPES, MASK, BlockData, data_validate


def _block_type(slug: str) -> type[BlockData]:
    if slug not in BLOCK_TYPES:
        raise InvalidInput(f"unknown block type {slug!r}; the types are {', '.join(BLOCK_TYPES)}", field="block_type")
    return BLOCK_TYPES[slug]


def _field_path(location: tuple[Any, ...]) -> str:
    path = "data"
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _unmasked(value: Any, stored: Any, path: str) -> Any:
    """`value` with each mask replaced by the stored value at the same place; a mask with nothing stored is an
    error (it would store the mask itself as the secret)."""
    if value == MASK:
        if stored is None:
            raise ValidationError({path: [f"{MASK!r} is the mask a read shows; give the value itself"]})
        return stored
    if isinstance(value, dict):
        stored_mapping = stored if isinstance(stored, dict) else {}
        return {key: _unmasked(item, stored_mapping.get(key), f"{path}.{key}") for key, item in value.items()}
    return value


def _validated(block_type: type[BlockData], data: Any, stored_secrets: dict[str, Any]) -> dict[str, Any]:
    """The data completed with defaults, masks replaced by the stored secrets; a ValidationError naming each
    field (`data.port`) that the type refuses."""
    if not isinstance(data, dict):
        raise ValidationError({"data": ["must be a JSON object of the block type's fields"]})
    data = dict(data)
    for field in block_type.secret_fields():
        if field in data:
            data[field] = _unmasked(data[field], stored_secrets.get(field), f"data.{field}")
    try:
        return data_validate(block_type.slug, data)
    except DataValidationError as exc:
        errors: dict[str, list[str]] = {}
        for error in exc.errors():
            errors.setdefault(_field_path(tuple(error["loc"])), []).append(error["msg"])
        raise ValidationError(errors) from None


def _store(document: BlockDocument, block_type: type[BlockData], data: dict[str, Any]) -> None:
    secret_fields = set(block_type.secret_fields())
    document.block_type_version = block_type.version
    document.data = {key: value for key, value in data.items() if key not in secret_fields}
    document.encrypted_secrets = encryption.encrypt({key: data[key] for key in data if key in secret_fields})


def block_document_create(
    *, block_type: str, name: str, data: Any, overwrite: bool = False
) -> tuple[BlockDocument, bool]:
    """A new document (409 if the name is taken for this type), or, with `overwrite`, the existing one with its
    data replaced; returns (document, created)."""
    kind = _block_type(block_type)
    try:
        return _create_or_overwrite(kind, name, data, overwrite)
    except IntegrityError:
        if not overwrite:
            raise Conflict(f"a block {block_type}/{name} already exists", field="name") from None
    # A concurrent request created it between the lookup and the insert: overwrite that one.
    return _create_or_overwrite(kind, name, data, overwrite)


def _create_or_overwrite(kind: type[BlockData], name: str, data: Any, overwrite: bool) -> tuple[BlockDocument, bool]:
    with transaction.atomic():
        existing = BlockDocument.objects.select_for_update().filter(block_type=kind.slug, name=name).first()
        if existing is not None and not overwrite:
            raise Conflict(
                f"a block {kind.slug}/{name} already exists; send overwrite: true to replace its data", field="name"
            )
        stored = selectors.block_document_secrets(document=existing) if existing is not None else {}
        validated = _validated(kind, data, stored)
        document = existing or BlockDocument(block_type=kind.slug, name=name)
        _store(document, kind, validated)
        document.save()
    return document, existing is None


def block_document_update(*, document: BlockDocument, data: Any) -> BlockDocument:
    """Replace the document's data, validated in full; a secret sent as the mask keeps its stored value."""
    kind = _block_type(document.block_type)
    with transaction.atomic():
        locked = BlockDocument.objects.select_for_update().get(pk=document.pk)
        validated = _validated(kind, data, selectors.block_document_secrets(document=locked))
        _store(locked, kind, validated)
        locked.save()
    return locked


def block_document_delete(*, document: BlockDocument) -> None:
    """Delete the document; 409 naming the deployments whose storage it is, or the runs whose results it holds."""
    using = selectors.deployments_using(document=document)
    if using:
        raise Conflict(
            f"block {document.slug} is the storage of deployment{'s' if len(using) > 1 else ''} "
            f"{', '.join(using)}; change or delete {'them' if len(using) > 1 else 'it'} first"
        )
    runs, more = selectors.runs_with_results_in(document=document)
    if runs:
        named = ", ".join(runs) + (" and more" if more else "")
        raise Conflict(
            f"block {document.slug} holds the results of {named}; their results could not be read without it: "
            "delete those runs first"
        )
    try:
        with transaction.atomic():
            document.delete()
    except ProtectedError as exc:  # another app's row points at it with on_delete=PROTECT (a notification policy)
        users = sorted({f"{type(row)._meta.verbose_name} {str(row)!r}" for row in exc.protected_objects})
        raise Conflict(f"block {document.slug} is used by {', '.join(users[:3])}; change or delete it first") from None


def block_documents_reencrypt() -> int:
    """Re-encrypt every document's secrets with the current key (after a rotation); returns how many."""
    count = 0
    for document_id in BlockDocument.objects.exclude(encrypted_secrets="").values_list("pk", flat=True):
        with transaction.atomic():
            document = BlockDocument.objects.select_for_update().filter(pk=document_id).first()
            if document is None or not document.encrypted_secrets:
                continue
            document.encrypted_secrets = encryption.rotate(document.encrypted_secrets, document=document.slug)
            document.save(update_fields=["encrypted_secrets"])
            count += 1
    return count


def encryption_key_rotate() -> str:
    """Rotate the key and re-encrypt every document; a sentence saying what was done (and what is left to do)."""
    if encryption.keys_from_environment():
        count = block_documents_reencrypt()
        return (
            f"re-encrypted {count} block document(s) with the first key of {encryption.SETTING_NAME}; "
            "the other keys there can now be dropped"
        )
    path = encryption.key_file_prepend_new()
    count = block_documents_reencrypt()
    return (
        f"new key first in {path}; re-encrypted {count} block document(s) "
        "(the old keys stay as later lines so running processes still decrypt)"
    )

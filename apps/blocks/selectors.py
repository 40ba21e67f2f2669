"""Reads of block documents: lookups that raise NotFound, the data as a caller may see it, who uses a document."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet

from apps.blocks import encryption
from apps.blocks.models import BlockDocument
from apps.core.errors import NotFound
from apps.deployments.models import Deployment
from apps.runs.models import FlowRun, FlowRunState, TaskRun, TaskRunState
from orchestrator.block_types import BLOCK_TYPES, MASK, BlockData, block_type_get, data_masked


def block_types_all() -> list[type[BlockData]]:
    return list(BLOCK_TYPES.values())


def block_type_require(*, slug: str) -> type[BlockData]:
    if slug not in BLOCK_TYPES:
        raise NotFound(f"no block type {slug!r}; the types are {', '.join(BLOCK_TYPES)}")
    return BLOCK_TYPES[slug]


def block_documents_all() -> QuerySet[BlockDocument]:
    return BlockDocument.objects.all()


def block_documents_filter(*, block_type: str | None = None, name: str | None = None) -> QuerySet[BlockDocument]:
    documents = block_documents_all()
    if block_type:
        documents = documents.filter(block_type=block_type)
    if name:
        documents = documents.filter(name=name)
    return documents


def block_document_require(*, id: str | uuid.UUID) -> BlockDocument:
    try:
        key = uuid.UUID(str(id))
    except ValueError:
        raise NotFound(f"no block document with id {id}") from None
    document = BlockDocument.objects.filter(pk=key).first()
    if document is None:
        raise NotFound(f"no block document with id {id}")
    return document


def block_document_by_name_require(*, block_type: str, name: str) -> BlockDocument:
    document = BlockDocument.objects.filter(block_type=block_type, name=name).first()
    if document is None:
        hint = "" if block_type in BLOCK_TYPES else f" (and no block type {block_type!r})"
        raise NotFound(f"no block {block_type}/{name}{hint}")
    return document


def block_document_secrets(*, document: BlockDocument) -> dict[str, Any]:
    """The document's secret fields in clear (CannotDecrypt if no key opens them)."""
    return encryption.decrypt(document.encrypted_secrets, document=document.slug)


def block_document_data(*, document: BlockDocument, include_secrets: bool = False) -> dict[str, Any]:
    """The document's data: secrets in clear when asked (CannotDecrypt if no key opens them), else masked.

    Masked data reads the secrets too (a secret mapping shows its keys); when no key opens them, every secret
    field reads as the mask, so lists and the admin still work while the key is being restored.
    """
    if include_secrets:
        return {**document.data, **block_document_secrets(document=document)}
    try:
        secrets = block_document_secrets(document=document)
    except encryption.CannotDecrypt:
        secret_fields = (
            block_type_get(document.block_type).secret_fields() if document.block_type in BLOCK_TYPES else []
        )
        return {**document.data, **{field: MASK for field in secret_fields}}
    data = {**document.data, **secrets}
    return data_masked(document.block_type, data) if document.block_type in BLOCK_TYPES else data


def deployments_using(*, document: BlockDocument) -> list[str]:
    """`flow/deployment` of each deployment whose storage is this block."""
    deployments = Deployment.objects.filter(storage_block=document.slug).select_related("flow")
    return [str(deployment) for deployment in deployments.order_by("flow__name", "name")]


def runs_with_results_in(*, document: BlockDocument, limit: int = 3) -> tuple[list[str], bool]:
    """(up to `limit` runs, as "flow run 'name'" / "task run 'name'", that hold a result stored in this block;
    whether there are more). A state keeps the reference `{"storage": "block", "block": "type/name", ...}` in
    its data (orchestrator/sdk/results.py); every state is looked at, so a result an older state still names (a
    cache, a retried run's earlier completion) counts too. A JSON key lookup, the same on SQLite and PostgreSQL;
    it scans the states, which is fine for a delete (it stops at the first `limit + 1` runs)."""
    reference = {"data__storage": "block", "data__block": document.slug}
    found: list[str] = []
    for kind, states, runs, column in (
        ("flow run", FlowRunState.objects, FlowRun.objects, "flow_run_id"),
        ("task run", TaskRunState.objects, TaskRun.objects, "task_run_id"),
    ):
        wanted = limit + 1 - len(found)
        if wanted <= 0:
            break
        ids = list(states.filter(**reference).order_by().values_list(column, flat=True).distinct()[:wanted])
        names = runs.filter(pk__in=ids).order_by("name").values_list("name", flat=True)
        found += [f"{kind} {name!r}" for name in names]
    return found[:limit], len(found) > limit

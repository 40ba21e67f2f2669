"""Block endpoints: the block types (read-only, from orchestrator/block_types.py) and block documents (by id or by
`type/name`). Secret values read back masked; `?include_secrets=true` shows them to admin scope only."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.authentication import request_scope
from apps.accounts.models import SCOPE_RANK, Scope
from apps.blocks import selectors, services
from apps.blocks.api import serializers as s
from apps.blocks.models import BlockDocument

SLUG_PATTERN = "[a-z0-9][a-z0-9-]*"
NAME_PATTERN = "[^/\\x00-\\x1f\\x7f]+"
UUID_PATTERN = "[0-9a-fA-F-]{32,36}"

INCLUDE_SECRETS = OpenApiParameter(
    "include_secrets", bool, description="true: the secret values in clear (admin scope only; others get 403)"
)


def _include_secrets(request: Request) -> bool:
    """`?include_secrets=true`, allowed to admin scope only (403 saying so to any other caller)."""
    raw = request.query_params.get("include_secrets", "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw not in ("1", "true", "yes", "on"):
        raise exceptions.ValidationError({"include_secrets": ["must be true or false"]})
    scope = request_scope(request)
    if scope is None or SCOPE_RANK[scope] < SCOPE_RANK[Scope.ADMIN]:
        raise exceptions.PermissionDenied(
            f"include_secrets=true needs admin scope (this caller has {scope or 'no scope'}); "
            "without it, secret values read as ********"
        )
    return True


class BlockTypeViewSet(viewsets.ViewSet):
    """The block types this server knows, with their schema (the SDK and the admin build on it)."""

    lookup_field = "slug"
    lookup_value_regex = "[^/]+"

    @extend_schema(responses=s.BlockTypeSerializer(many=True))
    def list(self, request: Request) -> Response:
        results = [s.BlockTypeSerializer.of(block_type) for block_type in selectors.block_types_all()]
        return Response({"next": None, "previous": None, "results": results})

    @extend_schema(responses=s.BlockTypeSerializer)
    def retrieve(self, request: Request, slug: str) -> Response:
        return Response(s.BlockTypeSerializer.of(selectors.block_type_require(slug=slug)))


class BlockDocumentViewSet(viewsets.GenericViewSet):
    queryset = selectors.block_documents_all()
    serializer_class = s.BlockDocumentSerializer
    lookup_value_regex = UUID_PATTERN
    filterset_class = None
    ordering_fields = ["block_type", "name", "created", "updated"]

    def _render(self, documents: Any, *, include_secrets: bool, many: bool = False) -> Any:
        def data_of(document: BlockDocument) -> dict[str, Any]:
            return selectors.block_document_data(document=document, include_secrets=include_secrets)

        return s.BlockDocumentSerializer(documents, many=many, context={"data_of": data_of}).data

    @extend_schema(
        parameters=[
            OpenApiParameter("block_type", str, description="a block type's slug"),
            OpenApiParameter("name", str, description="a document's name"),
            INCLUDE_SECRETS,
        ]
    )
    def list(self, request: Request) -> Response:
        include_secrets = _include_secrets(request)
        documents = selectors.block_documents_filter(
            block_type=request.query_params.get("block_type"), name=request.query_params.get("name")
        )
        page = self.paginate_queryset(self.filter_queryset(documents))
        return self.get_paginated_response(self._render(page, include_secrets=include_secrets, many=True))

    @extend_schema(request=s.BlockDocumentCreateSerializer, responses={201: s.BlockDocumentSerializer})
    def create(self, request: Request) -> Response:
        """Create a document (409 if its name is taken for its type), or replace its data with `overwrite: true`
        (200)."""
        serializer = s.BlockDocumentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        document, created = services.block_document_create(**serializer.validated_data)
        return Response(
            self._render(document, include_secrets=False),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(parameters=[INCLUDE_SECRETS])
    def retrieve(self, request: Request, pk: str) -> Response:
        include_secrets = _include_secrets(request)
        document = selectors.block_document_require(id=pk)
        return Response(self._render(document, include_secrets=include_secrets))

    @extend_schema(request=s.BlockDocumentUpdateSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        """Replace the data, validated in full; a secret sent as ******** keeps its stored value."""
        document = selectors.block_document_require(id=pk)
        serializer = s.BlockDocumentUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        document = services.block_document_update(document=document, data=serializer.validated_data["data"])
        return Response(self._render(document, include_secrets=False))

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        """Delete a document; 409 naming the deployments whose storage it is."""
        services.block_document_delete(document=selectors.block_document_require(id=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="block_documents_by_name_retrieve",
        parameters=[INCLUDE_SECRETS],
        responses=s.BlockDocumentSerializer,
    )
    @action(
        detail=False,
        methods=["get"],
        url_path=f"(?P<block_type>{SLUG_PATTERN})/(?P<name>{NAME_PATTERN})",
        filterset_class=None,
        pagination_class=None,
    )
    def by_name(self, request: Request, block_type: str, name: str) -> Response:
        """A document by its type's slug and its name: `/api/block_documents/secret/db-password/`."""
        include_secrets = _include_secrets(request)
        document = selectors.block_document_by_name_require(block_type=block_type, name=name)
        return Response(self._render(document, include_secrets=include_secrets))

"""`/api/api_keys/`: list, create (the answer holds the key, once), read and revoke keys; admin scope only."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts import selectors, services
from apps.accounts.api import serializers as s
from apps.accounts.models import Scope


class ApiKeyViewSet(viewsets.GenericViewSet):
    required_scope = Scope.ADMIN
    queryset = selectors.api_keys_all()
    serializer_class = s.ApiKeySerializer
    lookup_field = "name"
    lookup_value_regex = "[^/\\x00-\\x1f\\x7f]+"
    filterset_class = None
    ordering_fields = ["name", "created", "last_used_at"]

    @extend_schema(
        parameters=[OpenApiParameter("active", bool, description="true: active keys only; false: the others")]
    )
    def list(self, request: Request) -> Response:
        keys = self.filter_queryset(selectors.api_keys_filter(active=request.query_params.get("active")))
        page = self.paginate_queryset(keys)
        return self.get_paginated_response(s.ApiKeySerializer(page, many=True).data)

    @extend_schema(request=s.ApiKeyCreateSerializer, responses=s.ApiKeyCreatedSerializer)
    def create(self, request: Request) -> Response:
        """Create a key; the answer's `key` is the only time it is shown."""
        serializer = s.ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        owner = request.user if getattr(request.user, "pk", None) else None
        api_key, secret = services.api_key_create(owner=owner, **serializer.validated_data)
        api_key.key = secret
        return Response(s.ApiKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, name: str) -> Response:
        return Response(s.ApiKeySerializer(selectors.api_key_require(name=name)).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, name: str) -> Response:
        """Revoke the active key of this name (its row stays, as revoked)."""
        services.api_key_revoke(name=name)
        return Response(status=status.HTTP_204_NO_CONTENT)

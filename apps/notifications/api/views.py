"""`/api/notification_policies/` (also `/api/notifications/`, SPEC §7): CRUD by name and `POST {name}/test/`;
`/api/notification_deliveries/`: the outbox, read-only, filtered by policy and status."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.notifications import selectors, services
from apps.notifications.api.serializers import (
    DeliveryFilterSerializer,
    NotificationDeliverySerializer,
    NotificationPolicySerializer,
    NotificationPolicyWriteSerializer,
    NotificationTestResultSerializer,
)
from apps.notifications.models import NotificationDelivery, NotificationPolicy


class NotificationPolicyViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Reading needs `read`; creating, changing, deleting and testing need `write` (as blocks and limits)."""

    queryset = selectors.notification_policies_all()
    serializer_class = NotificationPolicySerializer
    lookup_field = "name"
    lookup_value_regex = "[^/\\x00-\\x1f\\x7f]+"
    filterset_fields: list[str] = []

    def get_object(self) -> NotificationPolicy:
        policy = selectors.notification_policy_require(name=self.kwargs["name"])
        self.check_object_permissions(self.request, policy)
        return policy

    @staticmethod
    def _validated(data: Any, *, partial: bool) -> dict[str, Any]:
        serializer = NotificationPolicyWriteSerializer(data=data, partial=partial)
        serializer.is_valid(raise_exception=True)
        values = dict(serializer.validated_data)
        if "block" in values:
            values["block"] = services.block_for_channel(slug=values["block"])
        return values

    @extend_schema(request=NotificationPolicyWriteSerializer, responses={201: NotificationPolicySerializer})
    def create(self, request: Request) -> Response:
        policy = services.notification_policy_create(**self._validated(request.data, partial=False))
        return Response(NotificationPolicySerializer(policy).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=NotificationPolicyWriteSerializer, responses=NotificationPolicySerializer)
    def partial_update(self, request: Request, name: str | None = None) -> Response:
        policy = self.get_object()
        changes = self._validated(request.data, partial=True)
        policy = services.notification_policy_update(policy=policy, changes=changes)
        return Response(NotificationPolicySerializer(policy).data)

    def perform_destroy(self, instance: NotificationPolicy) -> None:
        services.notification_policy_delete(policy=instance)

    @extend_schema(
        request=None,
        responses={200: NotificationTestResultSerializer},
        description="Send a test notification now; 502 `channel_failed` with the channel's error when it fails.",
    )
    @action(detail=True, methods=["post"])
    def test(self, request: Request, name: str | None = None) -> Response:
        return Response(services.notification_policy_test(policy=self.get_object()))


class NotificationDeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = NotificationDelivery.objects.select_related("policy").order_by("-id")
    serializer_class = NotificationDeliverySerializer
    filterset_fields: list[str] = []
    ordering_fields: list[str] = []

    @extend_schema(
        parameters=[
            OpenApiParameter("policy", str, description="a policy's name or id"),
            OpenApiParameter("status", str, enum=["pending", "sent", "failed"]),
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        if self.action != "list":
            return super().get_queryset()
        filters = DeliveryFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.notification_deliveries_filter(**filters.validated_data)

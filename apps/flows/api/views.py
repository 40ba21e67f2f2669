"""Flow endpoints. Creating a flow is get-or-create by name (201 new, 200 existing)."""

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api.filters import FilterSet
from apps.flows import services
from apps.flows.api.serializers import FlowSerializer, FlowUpdateSerializer, FlowWriteSerializer
from apps.flows.models import Flow


class FlowFilterSet(FilterSet):
    name = django_filters.CharFilter()
    name__icontains = django_filters.CharFilter(field_name="name", lookup_expr="icontains")

    class Meta:
        model = Flow
        fields: list[str] = []


class FlowViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    queryset = Flow.objects.all()
    serializer_class = FlowSerializer
    filterset_class = FlowFilterSet
    ordering_fields = ["name", "created", "updated"]
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"

    @extend_schema(request=FlowWriteSerializer, responses=FlowSerializer)
    def create(self, request: Request) -> Response:
        serializer = FlowWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        flow, created = services.flow_get_or_create(**serializer.validated_data)
        return Response(FlowSerializer(flow).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=FlowUpdateSerializer, responses=FlowSerializer)
    def partial_update(self, request: Request, pk=None) -> Response:
        flow = self.get_object()
        serializer = FlowUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(FlowSerializer(services.flow_update(flow=flow, **serializer.validated_data)).data)

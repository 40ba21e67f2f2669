"""Tag concurrency limit endpoints: tag, limit and the task runs holding a slot."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from apps.concurrency import services
from apps.concurrency.models import ConcurrencyLimit
from apps.core.api.serializers import StrictSerializerMixin


class ConcurrencyLimitSerializer(serializers.ModelSerializer):
    active_slots = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = ConcurrencyLimit
        fields = ["id", "tag", "limit", "active_slots", "created", "updated"]
        read_only_fields = fields


class ConcurrencyLimitWriteSerializer(StrictSerializerMixin, serializers.Serializer):
    tag = serializers.CharField(max_length=200)
    limit = serializers.IntegerField(min_value=0, max_value=1_000_000)


class ConcurrencyLimitUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    limit = serializers.IntegerField(min_value=0, max_value=1_000_000)


class ConcurrencyLimitViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    queryset = ConcurrencyLimit.objects.all()
    serializer_class = ConcurrencyLimitSerializer
    lookup_field = "tag"
    lookup_value_regex = "[^/]+"

    @extend_schema(request=ConcurrencyLimitWriteSerializer, responses=ConcurrencyLimitSerializer)
    def create(self, request: Request) -> Response:
        serializer = ConcurrencyLimitWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        limit = services.concurrency_limit_create(**serializer.validated_data)
        return Response(ConcurrencyLimitSerializer(limit).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ConcurrencyLimitUpdateSerializer, responses=ConcurrencyLimitSerializer)
    def partial_update(self, request: Request, tag=None) -> Response:
        limit = self.get_object()
        serializer = ConcurrencyLimitUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        limit = services.concurrency_limit_update(limit=limit, value=serializer.validated_data["limit"])
        return Response(ConcurrencyLimitSerializer(limit).data)


router = SimpleRouter(trailing_slash=True)
router.register("concurrency_limits", ConcurrencyLimitViewSet, basename="concurrency-limit")
urlpatterns = router.urls

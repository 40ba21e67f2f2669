"""Tag concurrency limit endpoints: tag, limit and the task runs holding a slot."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.concurrency import services
from apps.concurrency.models import ConcurrencyLimit
from apps.core.api.routers import ApiRouter
from apps.core.api.serializers import StrictSerializerMixin, TagField
from apps.core.errors import NotFound


class ConcurrencyLimitSerializer(serializers.ModelSerializer):
    active_slots = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = ConcurrencyLimit
        fields = ["id", "tag", "limit", "active_slots", "created", "updated"]
        read_only_fields = fields


def validate_addressable(value: str) -> str:
    """A limit is read and changed at /api/concurrency_limits/{tag}/, so its tag cannot contain '/'."""
    if "/" in value:
        raise serializers.ValidationError("may not contain '/'")
    return value


class ConcurrencyLimitWriteSerializer(StrictSerializerMixin, serializers.Serializer):
    tag = TagField(validators=[validate_addressable])
    limit = serializers.IntegerField(min_value=0, max_value=1_000_000)


class ConcurrencyLimitUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    limit = serializers.IntegerField(min_value=0, max_value=1_000_000)


class ConcurrencyLimitViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    queryset = ConcurrencyLimit.objects.all()
    serializer_class = ConcurrencyLimitSerializer
    lookup_field = "tag"
    # Control characters (NUL above all) can never be part of a tag; refusing them here keeps them from the database.
    lookup_value_regex = "[^/\\x00-\\x1f\\x7f]+"

    def get_object(self) -> ConcurrencyLimit:
        tag = self.kwargs["tag"]
        limit = ConcurrencyLimit.objects.filter(tag=tag).first()
        if limit is None:
            raise NotFound(f"no concurrency limit for tag {tag[:200]!r}")
        self.check_object_permissions(self.request, limit)
        return limit

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

    @extend_schema(request=None, responses=ConcurrencyLimitSerializer)
    @action(detail=True, methods=["post"])
    def reset(self, request: Request, tag=None) -> Response:
        """Free every slot of the limit."""
        limit = services.concurrency_limit_reset(limit=self.get_object())
        return Response(ConcurrencyLimitSerializer(limit).data)


router = ApiRouter()
router.register("concurrency_limits", ConcurrencyLimitViewSet, basename="concurrency-limit")
urlpatterns = router.urls

"""Concurrency limit endpoints: tag limits (`/api/concurrency_limits/`, by tag), global limits
(`/api/global_concurrency_limits/`, by name, with `acquire`) and the leases that hold their slots
(`/api/concurrency_leases/`: release and renew). Slots in use are computed from the unexpired leases."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.concurrency import services
from apps.concurrency.models import ConcurrencyLease, ConcurrencyLimit, GlobalConcurrencyLimit
from apps.concurrency.selectors import holders_by_limit
from apps.core.api.routers import ApiRouter
from apps.core.api.serializers import StrictSerializerMixin, TagField
from apps.core.errors import NotFound

MAX_SLOTS = 1_000_000


def _holders(leases: list[ConcurrencyLease]) -> list[dict[str, Any]]:
    return [
        {
            "lease": str(lease.pk),
            "kind": lease.holder_kind,
            "id": lease.holder_id,
            "slots": lease.slots,
            "expires_at": lease.expires_at.isoformat(),
        }
        for lease in leases
    ]


class HoldersSerializerMixin:
    """`active_slots` (the holders' ids, a slot each for tag limits) and `holders`, from the unexpired leases;
    a list view passes every row's leases in the context (one query for the page)."""

    lease_field = "limit"

    def leases_of(self, obj: Any) -> list[ConcurrencyLease]:
        known = self.context.get("leases")  # type: ignore[attr-defined]
        if known is not None and obj.pk in known:
            return known[obj.pk]
        return holders_by_limit(field=self.lease_field, ids=[obj.pk])[obj.pk]


class ConcurrencyLimitSerializer(HoldersSerializerMixin, serializers.ModelSerializer):
    active_slots = serializers.SerializerMethodField()
    holders = serializers.SerializerMethodField()

    class Meta:
        model = ConcurrencyLimit
        fields = ["id", "tag", "limit", "active_slots", "holders", "created", "updated"]
        read_only_fields = fields

    def get_active_slots(self, obj: ConcurrencyLimit) -> list[str]:
        return [lease.holder_id for lease in self.leases_of(obj)]

    def get_holders(self, obj: ConcurrencyLimit) -> list[dict[str, Any]]:
        return _holders(self.leases_of(obj))


def validate_addressable(value: str) -> str:
    """A limit is read and changed at /api/concurrency_limits/{tag}/, so its tag cannot contain '/'."""
    if "/" in value:
        raise serializers.ValidationError("may not contain '/'")
    return value


class ConcurrencyLimitWriteSerializer(StrictSerializerMixin, serializers.Serializer):
    tag = TagField(validators=[validate_addressable])
    limit = serializers.IntegerField(min_value=0, max_value=MAX_SLOTS)


class ConcurrencyLimitUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    limit = serializers.IntegerField(min_value=0, max_value=MAX_SLOTS)


class ListWithLeasesMixin:
    lease_field = "limit"

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()  # type: ignore[misc]
        page = getattr(self, "_page_rows", None)
        if page is not None:
            context["leases"] = holders_by_limit(field=self.lease_field, ids=[row.pk for row in page])
        return context

    def paginate_queryset(self, queryset: Any) -> Any:
        page = super().paginate_queryset(queryset)  # type: ignore[misc]
        self._page_rows = list(page) if page is not None else list(queryset)
        return page


class ConcurrencyLimitViewSet(
    ListWithLeasesMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
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


# -- global limits ----------------------------------------------------------------------------------------------
class GlobalConcurrencyLimitSerializer(HoldersSerializerMixin, serializers.ModelSerializer):
    lease_field = "global_limit"
    active_slots = serializers.SerializerMethodField()
    holders = serializers.SerializerMethodField()

    class Meta:
        model = GlobalConcurrencyLimit
        fields = ["id", "name", "limit", "slot_decay_per_second", "active_slots", "holders", "created", "updated"]
        read_only_fields = fields

    def get_active_slots(self, obj: GlobalConcurrencyLimit) -> int:
        return sum(lease.slots for lease in self.leases_of(obj))

    def get_holders(self, obj: GlobalConcurrencyLimit) -> list[dict[str, Any]]:
        return _holders(self.leases_of(obj))


class GlobalConcurrencyLimitWriteSerializer(StrictSerializerMixin, serializers.Serializer):
    name = TagField(validators=[validate_addressable])
    limit = serializers.IntegerField(min_value=0, max_value=MAX_SLOTS)
    slot_decay_per_second = serializers.FloatField(min_value=0, max_value=MAX_SLOTS, required=False, allow_null=True)


class GlobalConcurrencyLimitUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    limit = serializers.IntegerField(min_value=0, max_value=MAX_SLOTS, required=False)
    slot_decay_per_second = serializers.FloatField(min_value=0, max_value=MAX_SLOTS, required=False, allow_null=True)


class AcquireSerializer(StrictSerializerMixin, serializers.Serializer):
    slots = serializers.IntegerField(min_value=1, max_value=MAX_SLOTS, default=1)
    mode = serializers.ChoiceField(choices=services.MODES, default="concurrency")
    timeout_seconds = serializers.FloatField(min_value=0, max_value=86400, required=False, allow_null=True)
    lease_seconds = serializers.FloatField(min_value=1, max_value=86400, required=False, allow_null=True)
    holder_kind = serializers.ChoiceField(choices=ConcurrencyLease.HolderKind.choices, default="client")
    holder_id = serializers.CharField(max_length=64, required=False, allow_null=True)


class LeaseSerializer(serializers.ModelSerializer):
    limit = serializers.SerializerMethodField()

    class Meta:
        model = ConcurrencyLease
        fields = ["id", "limit", "holder_kind", "holder_id", "slots", "expires_at", "decaying", "created"]
        read_only_fields = fields

    def get_limit(self, obj: ConcurrencyLease) -> str:
        return obj.global_limit.name if obj.global_limit_id else obj.limit.tag


class GlobalConcurrencyLimitViewSet(
    ListWithLeasesMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    lease_field = "global_limit"
    queryset = GlobalConcurrencyLimit.objects.all()
    serializer_class = GlobalConcurrencyLimitSerializer
    lookup_field = "name"
    lookup_value_regex = "[^/\\x00-\\x1f\\x7f]+"

    def get_object(self) -> GlobalConcurrencyLimit:
        name = self.kwargs["name"]
        limit = GlobalConcurrencyLimit.objects.filter(name=name).first()
        if limit is None:
            raise NotFound(
                f"no global concurrency limit named {name[:200]!r} "
                f"(create it: `orchestrator global-concurrency-limit create {name[:200]} N`)"
            )
        self.check_object_permissions(self.request, limit)
        return limit

    @extend_schema(request=GlobalConcurrencyLimitWriteSerializer, responses=GlobalConcurrencyLimitSerializer)
    def create(self, request: Request) -> Response:
        serializer = GlobalConcurrencyLimitWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        limit = services.global_limit_create(**serializer.validated_data)
        return Response(GlobalConcurrencyLimitSerializer(limit).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=GlobalConcurrencyLimitUpdateSerializer, responses=GlobalConcurrencyLimitSerializer)
    def partial_update(self, request: Request, name=None) -> Response:
        limit = self.get_object()
        serializer = GlobalConcurrencyLimitUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        limit = services.global_limit_update(global_limit=limit, changes=serializer.validated_data)
        return Response(GlobalConcurrencyLimitSerializer(limit).data)

    def destroy(self, request: Request, name=None) -> Response:
        services.global_limit_delete(global_limit=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=GlobalConcurrencyLimitSerializer)
    @action(detail=True, methods=["post"])
    def reset(self, request: Request, name=None) -> Response:
        """Free every slot of the limit."""
        limit = services.global_limit_reset(global_limit=self.get_object())
        return Response(GlobalConcurrencyLimitSerializer(limit).data)

    @extend_schema(request=AcquireSerializer, responses=LeaseSerializer)
    @action(detail=True, methods=["post"])
    def acquire(self, request: Request, name=None) -> Response:
        """Take slots, waiting for them up to `timeout_seconds` (at most 10 s: then 423, and the client asks
        again). Answers the lease: release it (or let it expire) when done, renew it while working."""
        limit = self.get_object()
        serializer = AcquireSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        lease = services.concurrency_lease_acquire(global_limit=limit, **serializer.validated_data)
        return Response(LeaseSerializer(lease).data, status=status.HTTP_201_CREATED)


# -- leases -----------------------------------------------------------------------------------------------------
class RenewSerializer(StrictSerializerMixin, serializers.Serializer):
    lease_ids = serializers.ListField(child=serializers.UUIDField(), max_length=10_000, default=list)
    task_run_ids = serializers.ListField(child=serializers.UUIDField(), max_length=10_000, default=list)


class TagWaitSerializer(StrictSerializerMixin, serializers.Serializer):
    tags = serializers.ListField(child=TagField(), min_length=1, max_length=100)
    timeout_seconds = serializers.FloatField(min_value=0, max_value=86400, default=5)


class ConcurrencyLeaseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = ConcurrencyLease.objects.select_related("limit", "global_limit")
    serializer_class = LeaseSerializer

    def get_object(self) -> ConcurrencyLease:
        lease = self.get_queryset().filter(pk=self.kwargs["pk"]).first() if _is_uuid(self.kwargs["pk"]) else None
        if lease is None:
            raise NotFound(f"no concurrency lease {self.kwargs['pk'][:64]!r} (released, or expired and reaped)")
        return lease

    @extend_schema(request=None, responses=None)
    @action(detail=True, methods=["post"])
    def release(self, request: Request, pk=None) -> Response:
        services.concurrency_lease_release(lease=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=LeaseSerializer, operation_id="concurrency_leases_renew_one")
    @action(detail=True, methods=["post"], url_path="renew")
    def renew_one(self, request: Request, pk=None) -> Response:
        lease = self.get_object()
        if not services.concurrency_leases_renew(lease_ids=[str(lease.pk)]):
            raise NotFound(f"concurrency lease {str(lease.pk)!r} has expired: its slots may be taken")
        lease.refresh_from_db()
        return Response(LeaseSerializer(lease).data)

    @extend_schema(request=RenewSerializer, responses=dict)
    @action(detail=False, methods=["post"])
    def renew(self, request: Request) -> Response:
        """Renew many leases in one call: by id, and every lease the task runs hold (the SDK's heartbeat)."""
        serializer = RenewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        renewed = services.concurrency_leases_renew(
            lease_ids=[str(i) for i in serializer.validated_data["lease_ids"]],
            task_run_ids=[str(i) for i in serializer.validated_data["task_run_ids"]],
        )
        return Response({"renewed": renewed, "lease_seconds": settings.ORCHESTRATOR_CONCURRENCY_LEASE_SECONDS})

    @extend_schema(request=TagWaitSerializer, responses=dict)
    @action(detail=False, methods=["post"])
    def wait(self, request: Request) -> Response:
        """Wait (at most 10 s) until each limited tag among `tags` has a free slot: `{"free": bool, "waited":
        bool}`. A task run answered WAIT by a full tag limit calls it, then proposes Running again."""
        serializer = TagWaitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(services.concurrency_tag_slots_wait(**serializer.validated_data))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


router = ApiRouter()
router.register("concurrency_limits", ConcurrencyLimitViewSet, basename="concurrency-limit")
router.register("global_concurrency_limits", GlobalConcurrencyLimitViewSet, basename="global-concurrency-limit")
router.register("concurrency_leases", ConcurrencyLeaseViewSet, basename="concurrency-lease")
urlpatterns = router.urls

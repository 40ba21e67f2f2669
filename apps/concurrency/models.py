"""Concurrency limits and the leases that hold their slots.

A tag limit lets at most `limit` task runs carrying `tag` run at once; a global limit is a named pool of slots
that code takes with `concurrency("db")` (optionally decaying at a rate: `rate_limit("api")`). A slot is held by
a lease that expires unless its holder renews it: slots in use are the sum of the unexpired leases' slots,
computed on every read, never stored (docs/concurrency.md).
"""

from django.db import models
from django.db.models import Q

from apps.core.models import BaseModel


class ConcurrencyLimit(BaseModel):
    tag = models.CharField(max_length=200, unique=True)
    limit = models.PositiveIntegerField()

    class Meta:
        ordering = ["tag"]

    def __str__(self) -> str:
        return f"{self.tag} (limit {self.limit})"


class GlobalConcurrencyLimit(BaseModel):
    name = models.CharField(max_length=200, unique=True)
    limit = models.PositiveIntegerField()
    # A rate limit: slots taken in rate_limit mode free themselves at this many per second.
    slot_decay_per_second = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} (limit {self.limit})"


class ConcurrencyLease(BaseModel):
    """`slots` slots of one limit (a tag limit or a global limit), held by a run or a client until `expires_at`."""

    class HolderKind(models.TextChoices):
        TASK_RUN = "task_run", "task run"
        FLOW_RUN = "flow_run", "flow run"
        CLIENT = "client", "client"

    limit = models.ForeignKey(ConcurrencyLimit, null=True, blank=True, on_delete=models.CASCADE, related_name="leases")
    global_limit = models.ForeignKey(
        GlobalConcurrencyLimit, null=True, blank=True, on_delete=models.CASCADE, related_name="leases"
    )
    holder_kind = models.CharField(max_length=16, choices=HolderKind.choices)
    holder_id = models.CharField(max_length=64)
    slots = models.PositiveIntegerField(default=1)
    expires_at = models.DateTimeField()
    # rate_limit leases are never released: they expire as the limit's slots decay.
    decaying = models.BooleanField(default=False)

    class Meta:
        ordering = ["created"]
        constraints = [
            models.CheckConstraint(
                condition=Q(limit__isnull=False, global_limit__isnull=True)
                | Q(limit__isnull=True, global_limit__isnull=False),
                name="concurrency_lease_one_limit",
            ),
            models.UniqueConstraint(
                fields=["limit", "holder_kind", "holder_id"],
                condition=Q(limit__isnull=False),
                name="concurrency_lease_one_per_tag_holder",
            ),
        ]
        indexes = [
            models.Index(fields=["holder_kind", "holder_id"]),
            models.Index(fields=["expires_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.slots} slot(s) held by {self.holder_kind} {self.holder_id}"

"""API keys: a random secret shown once, stored as its SHA-256 hash, with a scope, an owner and a lifetime."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.core.models import BaseModel


class Scope:
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"
    values = [READ, WRITE, ADMIN]
    choices = [
        (READ, "read (GET only)"),
        (WRITE, "write (runs, states, logs, flows, deployments, pools, limits)"),
        (ADMIN, "admin (also keys, users, secrets, database operations)"),
    ]


# What each scope includes: admin > write > read.
SCOPE_RANK = {Scope.READ: 1, Scope.WRITE: 2, Scope.ADMIN: 3}


class ApiKey(BaseModel):
    name = models.CharField(max_length=100, help_text="what the key is for, e.g. 'worker-eu-1'")
    prefix = models.CharField(max_length=16, editable=False, help_text="the key's first characters, to recognise it")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.WRITE)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="api_keys"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"
        ordering = ["name"]
        constraints = [
            # A name names one usable key; a revoked key keeps its row (and name) for the record.
            models.UniqueConstraint(fields=["name"], condition=Q(revoked_at__isnull=True), name="api_key_active_name")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…, {self.scope})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.is_expired else "active"

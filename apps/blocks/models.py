"""Block documents: a named configuration of one block type (orchestrator/block_types.py), its secrets encrypted."""

from __future__ import annotations

from django.db import models

from apps.core.models import BaseModel


class BlockDocument(BaseModel):
    """`data` holds the non-secret fields; `encrypted_secrets` a Fernet token of the JSON of the secret fields
    (apps/blocks/encryption.py), so the database never holds a secret in clear."""

    block_type = models.CharField(max_length=100, help_text="the block type's slug, e.g. remote-file-system")
    block_type_version = models.PositiveIntegerField(default=1)
    name = models.CharField(max_length=200)
    data = models.JSONField(default=dict, blank=True)
    encrypted_secrets = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["block_type", "name"]
        constraints = [models.UniqueConstraint(fields=["block_type", "name"], name="block_document_unique_type_name")]
        indexes = [models.Index(fields=["name"], name="block_document_name")]

    def __str__(self) -> str:
        return self.slug

    @property
    def slug(self) -> str:
        """`type/name`, the way deployments and the CLI name a block: `remote-file-system/code`."""
        return f"{self.block_type}/{self.name}"

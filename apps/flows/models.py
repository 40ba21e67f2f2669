"""A flow: the named unit of work that runs belong to."""

from django.db import models

from apps.core.models import BaseModel


class Flow(BaseModel):
    name = models.CharField(max_length=200, unique=True)
    tags = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

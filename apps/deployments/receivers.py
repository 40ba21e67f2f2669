"""What deployments protect in other apps, connected when the app loads (apps.py). A work pool that active
deployments send runs to cannot be deleted: their runs would wait for a worker forever. The deployments app
depends on work pools, not the reverse, so the guard lives here, on Django's pre_delete signal (the work pool
app's own code, its admin and its API all delete through `Model.delete`)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import pre_delete
from django.dispatch import receiver

from apps.core.errors import Conflict
from apps.deployments.models import Deployment

NAMED_AT_MOST = 10


@receiver(pre_delete, sender="work_pools.WorkPool", dispatch_uid="deployments.protect_work_pools")
def refuse_deleting_a_pool_in_use(sender: Any, instance: Any, **kwargs: Any) -> None:
    users = list(
        Deployment.objects.filter(work_pool_name=instance.name, paused=False)
        .select_related("flow")
        .order_by("flow__name", "name")
        .values_list("flow__name", "name")[: NAMED_AT_MOST + 1]
    )
    if not users:
        return
    names = ", ".join(f"{flow}/{name}" for flow, name in users[:NAMED_AT_MOST])
    more = " and more" if len(users) > NAMED_AT_MOST else ""
    raise Conflict(
        f"work pool {instance.name!r} is used by active deployments: {names}{more}; pause them first "
        f"(`orchestrator deployment pause FLOW/DEPLOYMENT`, or `work-pool delete {instance.name} --force`)"
    )

"""The work pools page (/ui/work-pools/): pools, their queues and workers, and the command that starts a worker."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from apps.ui import overview
from apps.ui.access import viewer_required
from apps.ui.page import render_page


@viewer_required
def work_pools(request: HttpRequest) -> HttpResponse:
    return render_page(
        request,
        "ui/work_pools/index.html",
        title="Work pools",
        section="work_pools",
        context={"pools": overview.work_pools_detail()},
    )

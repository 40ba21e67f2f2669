"""The concurrency page (/ui/concurrency/): tag and global limits, their slots in use and the runs holding them."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from apps.ui import overview
from apps.ui.access import viewer_required
from apps.ui.page import render_page


@viewer_required
def concurrency(request: HttpRequest) -> HttpResponse:
    return render_page(
        request,
        "ui/concurrency/index.html",
        title="Concurrency limits",
        section="concurrency",
        context={
            "limits": overview.concurrency_overview(),
            "global_limits": overview.global_concurrency_overview(),
        },
    )

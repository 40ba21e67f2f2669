"""The concurrency page (/ui/concurrency/): tag limits, their slots in use and the runs holding them."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse

from apps.ui import overview
from apps.ui.views.page import render_page


@staff_member_required
def concurrency(request: HttpRequest) -> HttpResponse:
    return render_page(
        request,
        "ui/concurrency/index.html",
        title="Concurrency limits",
        section="concurrency",
        context={"limits": overview.concurrency_overview()},
    )

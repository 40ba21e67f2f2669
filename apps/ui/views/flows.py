"""The flows page (/ui/flows/): each flow with its deployments and the state of its newest run."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from apps.ui import overview
from apps.ui.access import viewer_required
from apps.ui.page import render_page


@viewer_required
def flows(request: HttpRequest) -> HttpResponse:
    return render_page(
        request, "ui/flows/index.html", title="Flows", section="flows", context={"flows": overview.flows_overview()}
    )

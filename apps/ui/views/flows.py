"""The flows page (/ui/flows/): each flow with its deployments and the state of its newest run."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse

from apps.ui import overview
from apps.ui.views.page import render_page


@staff_member_required
def flows(request: HttpRequest) -> HttpResponse:
    return render_page(
        request, "ui/flows/index.html", title="Flows", section="flows", context={"flows": overview.flows_overview()}
    )

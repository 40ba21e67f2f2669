"""The deployment pages: the list (/ui/deployments/) and one deployment (/ui/deployments/<id>/) with its next
runs, recent runs, Pause/Resume and the Run form. Every write goes through apps.deployments.services."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from apps.core.errors import OrchestratorError
from apps.deployments import selectors, services
from apps.deployments.models import Deployment
from apps.ui import overview
from apps.ui.access import can_operate, operator_required, viewer_required
from apps.ui.forms import ParametersForm, RunOptionsForm
from apps.ui.page import render_page


def _deployment_or_404(deployment_id: uuid.UUID) -> Deployment:
    deployment = selectors.deployment_get(deployment_id=deployment_id)
    if deployment is None:
        raise Http404("no such deployment")
    return deployment


@viewer_required
@require_GET
def deployments(request: HttpRequest) -> HttpResponse:
    return render_page(
        request,
        "ui/deployments/index.html",
        title="Deployments",
        section="deployments",
        context={"deployments": overview.deployments_overview()},
    )


def _detail(
    request: HttpRequest,
    deployment: Deployment,
    parameters_form: ParametersForm,
    options_form: RunOptionsForm,
    status: int = 200,
) -> HttpResponse:
    now = timezone.now()
    response = render_page(
        request,
        "ui/deployments/detail.html",
        title=f"Deployment {deployment.flow.name}/{deployment.name}",
        section="deployments",
        context={
            "deployment": deployment,
            "schedules": list(deployment.schedules.all()),
            "next_runs": overview.deployment_next_runs(deployment=deployment, now=now),
            "recent_runs": overview.deployment_recent_runs(deployment=deployment, now=now),
            "parameters_form": parameters_form,
            "options_form": options_form,
            "now": now,
            "can_operate": can_operate(request),
        },
    )
    response.status_code = status
    return response


@viewer_required
@require_GET
def deployment_detail(request: HttpRequest, deployment_id: uuid.UUID) -> HttpResponse:
    deployment = _deployment_or_404(deployment_id)
    return _detail(request, deployment, ParametersForm(deployment=deployment), RunOptionsForm())


@operator_required
@require_POST
def deployment_run(request: HttpRequest, deployment_id: uuid.UUID) -> HttpResponse:
    """The Run form: parse the fields, let the service check the parameters against the schema and create
    the run; on any refusal show the page again with the error on the field it names (400)."""
    deployment = _deployment_or_404(deployment_id)
    parameters_form = ParametersForm(request.POST, deployment=deployment)
    options_form = RunOptionsForm(request.POST)
    if parameters_form.is_valid() and options_form.is_valid():
        try:
            run, _ = services.deployment_create_flow_run(
                deployment=deployment,
                parameters=parameters_form.parameters(),
                tags=options_form.cleaned_data["tags"],
                scheduled_time=options_form.cleaned_data["scheduled_time"],
            )
        except OrchestratorError as error:
            field = error.field or ""
            if field.startswith("parameters"):
                parameters_form.add_parameter_error(field, error.message)
            else:
                parameters_form.add_error(None, f"{field}: {error.message}" if field else error.message)
        else:
            messages.success(request, f"Created flow run {run.name}.")
            return HttpResponseRedirect(f"/ui/flow-runs/{run.id}/")
    return _detail(request, deployment, parameters_form, options_form, status=400)


@operator_required
@require_POST
def deployment_pause(request: HttpRequest, deployment_id: uuid.UUID) -> HttpResponse:
    deployment = services.deployment_pause(deployment=_deployment_or_404(deployment_id))
    messages.success(request, f"Paused {deployment.name}: its waiting scheduled runs were removed.")
    return HttpResponseRedirect(f"/ui/deployments/{deployment.id}/")


@operator_required
@require_POST
def deployment_resume(request: HttpRequest, deployment_id: uuid.UUID) -> HttpResponse:
    deployment = services.deployment_resume(deployment=_deployment_or_404(deployment_id))
    messages.success(request, f"Resumed {deployment.name}: its schedules create runs again.")
    return HttpResponseRedirect(f"/ui/deployments/{deployment.id}/")

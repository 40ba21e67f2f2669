"""The live pages' URLs, mounted at /ui/ (orchestrator/urls.py). Each page family adds its patterns here."""

from django.urls import path

from apps.ui.views import concurrency, dashboard, deployments, flows, work_pools

app_name = "ui"

urlpatterns: list = [
    path("", dashboard.dashboard, name="dashboard"),
    path("flows/", flows.flows, name="flows"),
    path("deployments/", deployments.deployments, name="deployments"),
    path("deployments/<uuid:deployment_id>/", deployments.deployment_detail, name="deployment"),
    path("deployments/<uuid:deployment_id>/run/", deployments.deployment_run, name="deployment-run"),
    path("deployments/<uuid:deployment_id>/pause/", deployments.deployment_pause, name="deployment-pause"),
    path("deployments/<uuid:deployment_id>/resume/", deployments.deployment_resume, name="deployment-resume"),
    path("work-pools/", work_pools.work_pools, name="work-pools"),
    path("concurrency/", concurrency.concurrency, name="concurrency"),
]

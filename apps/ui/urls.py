"""The live pages' URLs, mounted at /ui/ (orchestrator/urls.py). Each page family adds its patterns here."""

from django.urls import path

from apps.ui.views import concurrency, dashboard, deployments, flows, login, runs, work_pools

app_name = "ui"

urlpatterns: list = [
    path("", dashboard.dashboard, name="dashboard"),
    path("login/", login.LoginView.as_view(), name="login"),
    path("logout/", login.LogoutView.as_view(), name="logout"),
    # The flow run pages (apps/ui/views/runs.py).
    path("flow-runs/", runs.flow_run_list, name="flow-run-list"),
    path("flow-runs/rows/", runs.flow_run_rows, name="flow-run-rows"),
    path("flow-runs/<uuid:run_id>/", runs.flow_run_detail, name="flow-run-detail"),
    path("flow-runs/<uuid:run_id>/part/<slug:part>/", runs.flow_run_part, name="flow-run-part"),
    path("flow-runs/<uuid:run_id>/cancel/", runs.flow_run_cancel, name="flow-run-cancel"),
    path("flow-runs/<uuid:run_id>/retry/", runs.flow_run_retry, name="flow-run-retry"),
    path("flow-runs/<uuid:run_id>/resume/", runs.flow_run_resume, name="flow-run-resume"),
    path("flows/", flows.flows, name="flows"),
    path("deployments/", deployments.deployments, name="deployments"),
    path("deployments/<uuid:deployment_id>/", deployments.deployment_detail, name="deployment"),
    path("deployments/<uuid:deployment_id>/run/", deployments.deployment_run, name="deployment-run"),
    path("deployments/<uuid:deployment_id>/pause/", deployments.deployment_pause, name="deployment-pause"),
    path("deployments/<uuid:deployment_id>/resume/", deployments.deployment_resume, name="deployment-resume"),
    path("work-pools/", work_pools.work_pools, name="work-pools"),
    path("concurrency/", concurrency.concurrency, name="concurrency"),
]

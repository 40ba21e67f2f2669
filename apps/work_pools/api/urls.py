from django.urls import path

from apps.core.api.routers import ApiRouter
from apps.work_pools.api.views import FlowRunWaitingView, TaskRunWaitingView, WorkPoolViewSet

router = ApiRouter()
router.register("work_pools", WorkPoolViewSet, basename="work-pool")
urlpatterns = [
    # Why a run waits is mostly about its pool, its queues and their workers: served from here (docs/waiting.md).
    path("flow_runs/<uuid:run_id>/waiting/", FlowRunWaitingView.as_view(), name="flow-run-waiting"),
    path("task_runs/<uuid:run_id>/waiting/", TaskRunWaitingView.as_view(), name="task-run-waiting"),
    *router.urls,
]

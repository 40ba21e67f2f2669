from django.urls import path

from apps.core.api.routers import ApiRouter
from apps.work_pools.api.views import FlowRunWaitingView, WorkPoolViewSet

router = ApiRouter()
router.register("work_pools", WorkPoolViewSet, basename="work-pool")
urlpatterns = [
    # A flow run's waiting reasons are about its pool, its queues and their workers: served from here.
    path("flow_runs/<uuid:run_id>/waiting/", FlowRunWaitingView.as_view(), name="flow-run-waiting"),
    *router.urls,
]

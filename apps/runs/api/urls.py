from apps.core.api.routers import ApiRouter
from apps.runs.api.views import FlowRunViewSet, TaskRunViewSet

router = ApiRouter()
router.register("flow_runs", FlowRunViewSet, basename="flow-run")
router.register("task_runs", TaskRunViewSet, basename="task-run")
urlpatterns = router.urls

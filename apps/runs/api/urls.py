from rest_framework.routers import SimpleRouter

from apps.runs.api.views import FlowRunViewSet, TaskRunViewSet

router = SimpleRouter(trailing_slash=True)
router.register("flow_runs", FlowRunViewSet, basename="flow-run")
router.register("task_runs", TaskRunViewSet, basename="task-run")
urlpatterns = router.urls

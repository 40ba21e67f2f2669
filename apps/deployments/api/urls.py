from apps.core.api.routers import ApiRouter
from apps.deployments.api.views import DeploymentViewSet

router = ApiRouter()
router.register("deployments", DeploymentViewSet, basename="deployment")
urlpatterns = router.urls

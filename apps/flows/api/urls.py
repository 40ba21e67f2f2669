from apps.core.api.routers import ApiRouter
from apps.flows.api.views import FlowViewSet

router = ApiRouter()
router.register("flows", FlowViewSet, basename="flow")
urlpatterns = router.urls

from rest_framework.routers import SimpleRouter

from apps.flows.api.views import FlowViewSet

router = SimpleRouter(trailing_slash=True)
router.register("flows", FlowViewSet, basename="flow")
urlpatterns = router.urls

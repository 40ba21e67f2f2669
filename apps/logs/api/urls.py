from apps.core.api.routers import ApiRouter
from apps.logs.api.views import LogViewSet

router = ApiRouter()
router.register("logs", LogViewSet, basename="log")
urlpatterns = router.urls

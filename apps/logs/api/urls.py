from rest_framework.routers import SimpleRouter

from apps.logs.api.views import LogViewSet

router = SimpleRouter(trailing_slash=True)
router.register("logs", LogViewSet, basename="log")
urlpatterns = router.urls

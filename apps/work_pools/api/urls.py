from apps.core.api.routers import ApiRouter
from apps.work_pools.api.views import WorkPoolViewSet

router = ApiRouter()
router.register("work_pools", WorkPoolViewSet, basename="work-pool")
urlpatterns = router.urls

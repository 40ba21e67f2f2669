from apps.accounts.api.views import ApiKeyViewSet
from apps.core.api.routers import ApiRouter

router = ApiRouter()
router.register("api_keys", ApiKeyViewSet, basename="api-key")
urlpatterns = router.urls

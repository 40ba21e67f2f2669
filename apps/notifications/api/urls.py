from apps.core.api.routers import ApiRouter
from apps.notifications.api.views import NotificationDeliveryViewSet, NotificationPolicyViewSet

router = ApiRouter()
router.register("notification_policies", NotificationPolicyViewSet, basename="notification-policy")
# SPEC §7 names the policies /api/notifications/: the same viewset.
router.register("notifications", NotificationPolicyViewSet, basename="notification")
router.register("notification_deliveries", NotificationDeliveryViewSet, basename="notification-delivery")
urlpatterns = router.urls

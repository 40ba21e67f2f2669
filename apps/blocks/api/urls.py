from apps.blocks.api.views import BlockDocumentViewSet, BlockTypeViewSet
from apps.core.api.routers import ApiRouter

router = ApiRouter()
router.register("block_types", BlockTypeViewSet, basename="block-type")
router.register("block_documents", BlockDocumentViewSet, basename="block-document")
urlpatterns = router.urls

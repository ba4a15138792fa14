from engage.api.routers import OptionalSlashRouter
from messaging.api.views import MessageViewSet

router = OptionalSlashRouter()
router.register("api/v1/messages", MessageViewSet, basename="message")

urlpatterns = router.urls

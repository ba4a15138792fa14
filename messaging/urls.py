from rest_framework.routers import SimpleRouter

from messaging.api.views import MessageViewSet

router = SimpleRouter(trailing_slash="/?")
router.register("api/v1/messages", MessageViewSet, basename="message")

urlpatterns = router.urls

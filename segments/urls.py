from django.urls import re_path

from engage.api.routers import OptionalSlashRouter
from segments.api import views
from segments.api.segments import SegmentViewSet

router = OptionalSlashRouter()
router.register("api/v1/segments", SegmentViewSet, basename="segment")

urlpatterns = [
    re_path(r"^i/?$", views.collector, name="collector-pixel"),
    re_path(r"^com\.snowplowanalytics\.snowplow/tp2/?$", views.collector, name="collector-tp2"),
    re_path(r"^api/v1/events/?$", views.EventsView.as_view(), name="events"),
    re_path(r"^api/v1/identify/?$", views.IdentifyView.as_view(), name="identify"),
    re_path(r"^api/v1/people/(?P<user_id>[^/]+)/?$", views.PersonView.as_view(), name="person"),
    re_path(r"^api/v1/debug/events/?$", views.DebugEventsView.as_view(), name="debug-events"),
    *router.urls,
]

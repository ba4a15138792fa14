from django.urls import re_path

from engage.api import views
from engage.api.explain import ExplainView
from engage.api.push import PushView

urlpatterns = [
    re_path(r"^api/v1/me/?$", views.KeyCheckView.as_view(), name="me"),
    re_path(r"^api/v1/targeting/evaluate/?$", views.EvaluateView.as_view(), name="evaluate"),
    re_path(r"^api/v1/targeting/push/?$", PushView.as_view(), name="targeting-push"),
    re_path(r"^api/v1/targeting/explain/?$", ExplainView.as_view(), name="targeting-explain"),
    re_path(
        r"^api/v1/widget/campaigns/?$", views.WidgetCampaignsView.as_view(), name="widget-campaigns"
    ),
    re_path(r"^api/v1/widget/preview/?$", views.WidgetPreviewView.as_view(), name="widget-preview"),
    re_path(
        r"^api/v1/deliveries/(?P<delivery_id>[^/]+)/events/?$",
        views.DeliveryEventsView.as_view(),
        name="delivery-events",
    ),
]

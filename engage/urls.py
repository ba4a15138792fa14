from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from engage import views

handler404 = "engage.views.not_found"
handler500 = "engage.views.server_failure"

urlpatterns = [
    path("admin/", admin.site.urls),
    re_path(r"^healthz/?$", views.healthz, name="healthz"),
    re_path(r"^api/schema/?$", SpectacularAPIView.as_view(), name="schema"),
    re_path(
        r"^api/docs/?$",
        views.api_docs_csp(SpectacularRedocView.as_view(url_name="schema")),
        name="api-docs",
    ),
    path("", include("segments.urls")),
    path("", include("engage.api.urls")),
    path("", include("engage.api.urls_insights")),
    path("", include("messaging.urls")),
    path("", include("surveys.urls")),
]

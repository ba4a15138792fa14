from django.urls import re_path

from engage.api.routers import OptionalSlashRouter
from surveys.api.views import ResponseSubmitView, SentimentView, SurveyViewSet

router = OptionalSlashRouter()
router.register("api/v1/surveys", SurveyViewSet, basename="survey")

urlpatterns = [
    re_path(r"^api/v1/responses/?$", ResponseSubmitView.as_view(), name="responses"),
    re_path(r"^api/v1/sentiment/?$", SentimentView.as_view(), name="sentiment"),
    *router.urls,
]

"""Routes of insights, KPIs and dashboards (with and without a trailing slash)."""

from engage.api.dashboards import DashboardViewSet
from engage.api.insights import InsightViewSet, KpiViewSet
from engage.api.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("api/v1/insights", InsightViewSet, basename="insight")
router.register("api/v1/kpis", KpiViewSet, basename="kpi")
router.register("api/v1/dashboards", DashboardViewSet, basename="dashboard")

urlpatterns = router.urls

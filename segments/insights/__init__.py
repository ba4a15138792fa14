"""Insights over stored events: trends and funnels, with breakdowns and a time budget.

    definition = trend_parse(body, today=date.today())      # 400 naming the field
    trend_compute(app=app, definition=definition)          # {"series": [{"buckets": …}]}
    definition = funnel_parse(body, today=date.today())
    funnel_compute(app=app, definition=definition, cohorts=…)  # {"steps": […], "breakdown"?}

The engine knows nothing of campaigns: breakdowns by exposure or variant come in as `Cohorts`
(see `segments.insights.cohorts`) built by the engage app from its deliveries.
"""

from segments.insights.budget import QueryTooExpensive, insight_budget
from segments.insights.cohorts import Cohorts, segment_cohorts
from segments.insights.definitions import (
    DateRange,
    EventFilter,
    FunnelDefinition,
    TrendDefinition,
    event_filter_parse,
    event_names_check,
    funnel_parse,
    trend_parse,
    window_parse,
)
from segments.insights.funnels import FunnelGroup, funnel_compute, funnel_groups
from segments.insights.trends import trend_compute

__all__ = [
    "Cohorts",
    "DateRange",
    "EventFilter",
    "FunnelDefinition",
    "FunnelGroup",
    "QueryTooExpensive",
    "TrendDefinition",
    "event_filter_parse",
    "event_names_check",
    "funnel_compute",
    "funnel_groups",
    "funnel_parse",
    "insight_budget",
    "segment_cohorts",
    "trend_compute",
    "trend_parse",
    "window_parse",
]

"""Cohorts: people in labelled groups, to break an insight down by.

The insight engine knows nothing of campaigns. Whoever knows a grouping (segments here; the
engage app for campaign exposure, holdout and variants) hands it over as a queryset whose rows
are `(person_id, label, anchor)`: `anchor` is the moment from which that person's events count
(e.g. their first exposure), or NULL for "any time in the insight's range". A person may be in
several labels (overlapping segments); they count once in each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import reduce
from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.db.models import CharField, DateTimeField, F, QuerySet, Value

from engage.errors import InvalidInput
from engage.models import App
from segments.models import Segment


@dataclass(frozen=True)
class Cohorts:
    """`queryset` yields rows with the columns `person_id`, `label`, `anchor` (in that order).

    `labels` fixes the order of the groups in results (groups with nobody still show).
    When `anchored`, a person's funnel starts only at or after their anchor (and, with
    `anchor_window`, at most that long after it).
    """

    queryset: QuerySet[Any]
    labels: tuple[str, ...]
    anchored: bool = False
    anchor_window: timedelta | None = None

    def sql(self) -> tuple[str, list[Any]]:
        sql, params = self.queryset.query.get_compiler(using=DEFAULT_DB_ALIAS).as_sql()
        return sql, list(params)


def label_value(label: str) -> Value:
    return Value(label, output_field=CharField())


NO_ANCHOR = Value(None, output_field=DateTimeField())


def segments_resolve(*, app: App, slugs: tuple[str, ...], field: str) -> list[Segment]:
    """The App's segments by slug, in order; 400 naming `field[i]` for an unknown slug."""
    found = {s.slug: s for s in Segment.objects.filter(app=app, slug__in=slugs)}
    segments = []
    for i, slug in enumerate(slugs):
        segment = found.get(slug)
        if segment is None:
            raise InvalidInput(
                f'{field}[{i}]: no segment "{slug}" in this App',
                code="unknown_segment",
                details={"field": f"{field}[{i}]", "segment": slug},
            )
        segments.append(segment)
    return segments


def segment_cohorts(*, app: App, slugs: tuple[str, ...], field: str) -> Cohorts:
    """One cohort per segment (its members now), labelled by slug."""
    from segments.selectors import segment_members

    parts = [
        segment_members(segment=segment)
        .order_by()
        .values(person_id=F("id"), label=label_value(segment.slug), anchor=NO_ANCHOR)
        for segment in segments_resolve(app=app, slugs=slugs, field=field)
    ]
    queryset = reduce(lambda a, b: a.union(b, all=True), parts)
    return Cohorts(queryset=queryset, labels=slugs)

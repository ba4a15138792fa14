"""KPIs on fixed experiment data: a known effect is found, no effect is not called one."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from engage.errors import Conflict, InvalidInput
from engage.experiments import sample_size_per_group
from engage.kpis import kpi_conversions, kpi_create, kpi_effect
from engage.models import Delivery
from segments.models import Event, EventSource, Person

pytestmark = pytest.mark.django_db

T = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
CAMPAIGN = 41


def _experiment(app, groups: dict[tuple[str, bool], tuple[int, int]], *, test_rows: int = 0):
    """People per (variant, holdout): (people, converters). Converters do `upgraded` 2 days
    after exposure; everyone also did `upgraded` a day *before* exposure (never counts)."""
    people, deliveries, events = [], [], []
    n = 0
    for (variant, holdout), (count, converters) in groups.items():
        for i in range(count):
            n += 1
            person = Person(app=app, user_id=f"u{n}", first_seen=T, last_seen=T)
            people.append((person, variant, holdout, i < converters))
    Person.objects.bulk_create([p for p, *_ in people])
    for person, variant, holdout, converts in people:
        decided = T + timedelta(minutes=person.pk % 60)
        deliveries.append(
            Delivery(
                app=app,
                person=person,
                kind="message",
                campaign_id=CAMPAIGN,
                variant=variant,
                holdout=holdout,
                decided_at=decided,
                shown_at=None if holdout else decided + timedelta(seconds=5),
            )
        )
        events.append(_event(app, person, decided - timedelta(days=1)))
        if converts:
            events.append(_event(app, person, decided + timedelta(days=2)))
    for i in range(test_rows):  # test deliveries: converted, but never counted
        person = people[i][0]
        deliveries.append(
            Delivery(
                app=app,
                person=person,
                kind="message",
                campaign_id=CAMPAIGN,
                variant="B",
                is_test=True,
                decided_at=T,
                shown_at=T,
            )
        )
    Delivery.objects.bulk_create(deliveries)
    Event.objects.bulk_create(events)


def _event(app, person, at):
    return Event(
        app=app,
        person=person,
        name="upgraded",
        timestamp=at,
        received_at=at,
        source=EventSource.API,
    )


def _kpi(app):
    return kpi_create(app=app, name="Upgrades", kind="event", definition={"event": "upgraded"})


def test_known_effect_is_significant_with_the_expected_lift(app_keys) -> None:
    app = app_keys.app
    _experiment(
        app,
        {("A", False): (500, 100), ("B", False): (500, 100), ("", True): (1000, 100)},
        test_rows=50,
    )
    kpi = _kpi(app)
    conversions = kpi_conversions(
        kpi=kpi,
        kind="message",
        campaign_id=CAMPAIGN,
        variants=["A", "B"],
        now=T + timedelta(days=30),
    )
    assert conversions == {
        "exposed": (1000, 200),
        "holdout": (1000, 100),
        "variant:A": (500, 100),
        "variant:B": (500, 100),
    }
    block = kpi_effect(
        kpi=kpi, conversions=conversions, variants=["A", "B"], minimum_detectable_effect=10
    )
    exposed = block["exposed"]
    assert exposed["rate"] == pytest.approx(0.2)
    assert block["holdout"]["rate"] == pytest.approx(0.1)
    assert exposed["lift"] == pytest.approx(1.0)
    # difference 0.1 ± 1.96 × √(0.2·0.8/1000 + 0.1·0.9/1000)
    half = 1.959963984540054 * math.sqrt(0.00025)
    assert exposed["difference_interval"] == pytest.approx([0.1 - half, 0.1 + half])
    assert exposed["lift_interval"] == pytest.approx([(0.1 - half) / 0.1, (0.1 + half) / 0.1])
    assert exposed["p_value"] < 1e-6
    assert exposed["significant"] is True
    assert exposed["verdict"].startswith("The campaign beats control")
    assert [v["variant"] for v in block["variants"]] == ["A", "B"]
    assert all(v["significant"] for v in block["variants"])
    # a 10% relative change from 10%: 14,750 per group, far more than we have
    assert block["sample_size_per_group"] == sample_size_per_group(
        baseline=0.1, relative_effect=0.1
    )
    assert "Sample too small" in block["warning"]


def test_no_effect_is_not_called_significant(app_keys) -> None:
    app = app_keys.app
    _experiment(app, {("", False): (1000, 100), ("", True): (1000, 101)})
    kpi = _kpi(app)
    conversions = kpi_conversions(
        kpi=kpi, kind="message", campaign_id=CAMPAIGN, variants=[""], now=T + timedelta(days=30)
    )
    block = kpi_effect(
        kpi=kpi, conversions=conversions, variants=[""], minimum_detectable_effect=50
    )
    assert block["exposed"]["significant"] is False
    assert block["exposed"]["p_value"] > 0.5
    assert "no significant difference" in block["exposed"]["verdict"]
    # baseline 10.1%, +50%: a few hundred per group; 1,000 each is enough: no warning
    assert block["sample_size_per_group"] < 1000
    assert block["warning"] is None
    assert block["variants"] == []


def test_conversions_outside_the_kpi_window_do_not_count(app_keys) -> None:
    app = app_keys.app
    _experiment(app, {("", False): (10, 10), ("", True): (10, 10)})
    kpi = kpi_create(
        app=app, name="Fast upgrades", kind="event", definition={"event": "upgraded"}, window_days=1
    )
    conversions = kpi_conversions(
        kpi=kpi, kind="message", campaign_id=CAMPAIGN, variants=[""], now=T + timedelta(days=30)
    )
    assert conversions["exposed"] == (10, 0)  # upgrades came 2 days after exposure


def test_sample_size_matches_the_textbook_figure() -> None:
    # 10% → 15% at alpha 0.05 (two-sided), power 0.8: 686 per group (Fleiss, no correction)
    assert sample_size_per_group(baseline=0.10, relative_effect=0.5) == 686
    assert sample_size_per_group(baseline=0.0, relative_effect=0.5) is None


def test_kpi_definitions_are_validated(app_keys) -> None:
    app = app_keys.app
    Event.objects.create(
        app=app,
        person=Person.objects.create(app=app, user_id="x", first_seen=T, last_seen=T),
        name="upgraded",
        timestamp=T,
        received_at=T,
        source=EventSource.API,
    )
    _kpi(app)
    with pytest.raises(Conflict):
        _kpi(app)
    with pytest.raises(InvalidInput, match=r'definition\.event: no event "nope"'):
        kpi_create(app=app, name="x", kind="event", definition={"event": "nope"})
    with pytest.raises(InvalidInput, match=r"definition.steps: a funnel has 2 to 10 steps"):
        kpi_create(app=app, name="y", kind="funnel", definition={"steps": [{"event": "upgraded"}]})
    with pytest.raises(InvalidInput, match="window_days"):
        kpi_create(
            app=app, name="z", kind="event", definition={"event": "upgraded"}, window_days=91
        )

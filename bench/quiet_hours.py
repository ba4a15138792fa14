"""Quiet-hours check cost: one in-process decision over 100 compiled campaigns, without and with
the App's quiet hours (the person's time zone resolved on every campaign), in the same run.

    .venv/bin/python bench/quiet_hours.py [--campaigns 100] [--decisions 5000]

No database: the App is an unsaved model instance, the person's facts are in memory and the
ledger is empty, so the figures are the engine's own CPU cost per decision.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--campaigns", type=int, default=100)
    parser.add_argument("--decisions", type=int, default=5000)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "engage.settings")
    import django

    django.setup()
    from engage.models import App
    from engage.targeting import (
        CompiledCampaign,
        Ledger,
        Moment,
        Situation,
        decide,
    )
    from segments.conditions import InMemoryFacts, compile_predicate, parse_condition

    condition = parse_condition({"attribute": "plan", "op": "eq", "value": "pro"})
    campaigns = tuple(
        CompiledCampaign(
            kind="message", id=i, name=f"c{i}", status="live", priority=i % 7,
            display="banner", starts_at=None, ends_at=None, trigger_on="api",
            trigger_event=None, trigger_url=None, delay_seconds=0,
            audience=compile_predicate(condition), audience_condition=condition,
            sample_bp=10_000, holdout_bp=0, max_impressions=None, recontact_days=0,
            goal_event="", goal_window_days=14, variants=(("", 1),), campaign=None,
        )
        for i in range(args.campaigns)
    )  # fmt: skip
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    def run(app: App) -> tuple[float, float]:
        facts = InMemoryFacts(
            attributes={"plan": "pro", "timezone": "Europe/Paris"}, now=now, context={}
        )
        situation = Situation(
            app=app, person=None, person_key="u:bench", facts=facts, moment=Moment(), now=now,
            ledger=Ledger({}, None, frozenset(), frozenset(), {}),
        )  # fmt: skip
        decide(situation, campaigns)  # warm caches
        timings = []
        for _ in range(args.decisions):
            start = time.perf_counter()
            decide(situation, campaigns)
            timings.append(time.perf_counter() - start)
        timings.sort()
        return timings[len(timings) // 2] * 1e6, timings[int(len(timings) * 0.99)] * 1e6

    base = App(pk=1, name="bench", quiet_hours={}, timezone="UTC")
    quiet = App(pk=1, name="bench", quiet_hours={"start": "22:00", "end": "08:00"}, timezone="UTC")
    for label, app in (("no quiet hours (baseline)", base), ("quiet hours, person tz", quiet)):
        p50, p99 = run(app)
        print(f"{label:28s} {args.campaigns} campaigns: p50 {p50:7.1f} µs  p99 {p99:7.1f} µs")


if __name__ == "__main__":
    main()

"""Experiment results: per variant counts, conversion with a 95% interval, lift vs holdout.

Treatment conversion is counted after the delivery was shown; the holdout's after it was
decided (the moment it would have been shown). Lift is tested with a two-sided two-proportion
z-test against the holdout group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q

from engage.models import Delivery

Z95 = 1.959963984540054


def normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (well behaved at 0%, 100% and small n)."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Comparison:
    lift: float | None  # relative: (p_t - p_c) / p_c
    difference: float  # absolute: p_t - p_c
    difference_interval: tuple[float, float]
    p_value: float | None
    significant: bool


def two_proportion_test(
    conv_t: int, n_t: int, conv_c: int, n_c: int, alpha: float = 0.05
) -> Comparison:
    """Two-sided z-test of p_t vs p_c with a pooled variance; a Wald interval of the difference."""
    if n_t == 0 or n_c == 0:
        return Comparison(None, 0.0, (0.0, 0.0), None, False)
    p_t, p_c = conv_t / n_t, conv_c / n_c
    diff = p_t - p_c
    pooled = (conv_t + conv_c) / (n_t + n_c)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
    if se_pooled == 0:
        p_value = 1.0 if diff == 0 else 0.0
    else:
        z = diff / se_pooled
        p_value = 2 * (1 - normal_cdf(abs(z)))
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    interval = (diff - Z95 * se, diff + Z95 * se)
    lift = diff / p_c if p_c > 0 else None
    return Comparison(lift, diff, interval, p_value, p_value < alpha)


def verdict_text(variant: str, comparison: Comparison, n_t: int, n_c: int) -> str:
    """Plain words for Parker: "B beats control, p = 0.01"."""
    name = variant or "The campaign"
    if n_c == 0:
        return f"{name}: no holdout group, so no lift can be measured."
    if comparison.p_value is None or n_t < 30 or n_c < 30:
        return f"{name}: too few people yet to tell ({n_t} exposed, {n_c} in holdout)."
    p = f"p = {comparison.p_value:.2g}" if comparison.p_value >= 0.001 else "p < 0.001"
    if not comparison.significant:
        return f"{name}: no significant difference from control yet ({p})."
    if comparison.difference > 0:
        return f"{name} beats control, {p}."
    return f"{name} does worse than control, {p}."


def campaign_results(*, kind: str, campaign_id: int, variants: list[str]) -> dict[str, Any]:
    """Counts, conversion rates and lift per variant for one campaign (test deliveries excluded).

    One aggregate query grouped by (variant, holdout).
    """
    rows = (
        Delivery.objects.filter(kind=kind, campaign_id=campaign_id, is_test=False)
        .values("variant", "holdout")
        .annotate(
            eligible=Count("id"),
            shown=Count("id", filter=Q(shown_at__isnull=False)),
            clicked=Count("id", filter=Q(clicked_at__isnull=False)),
            dismissed=Count("id", filter=Q(dismissed_at__isnull=False)),
            converted=Count("id", filter=Q(converted_at__isnull=False)),
            answered=Count("id", filter=Q(answered_at__isnull=False)),
        )
    )
    control = {"eligible": 0, "converted": 0}
    by_variant: dict[str, dict[str, int]] = {
        v: {"eligible": 0, "shown": 0, "clicked": 0, "dismissed": 0, "converted": 0, "answered": 0}
        for v in variants or [""]
    }
    for row in rows:
        if row["holdout"]:
            control["eligible"] += row["eligible"]
            control["converted"] += row["converted"]
            continue
        counts = by_variant.setdefault(
            row["variant"],
            {
                "eligible": 0,
                "shown": 0,
                "clicked": 0,
                "dismissed": 0,
                "converted": 0,
                "answered": 0,
            },
        )
        for key in counts:
            counts[key] += row[key]
    n_c, conv_c = control["eligible"], control["converted"]
    holdout_rate = conv_c / n_c if n_c else None
    out_variants = []
    for name, counts in by_variant.items():
        n_t = counts["shown"]
        comparison = two_proportion_test(counts["converted"], n_t, conv_c, n_c)
        low, high = wilson_interval(counts["converted"], n_t)
        out_variants.append(
            {
                "variant": name,
                **counts,
                "conversion_rate": counts["converted"] / n_t if n_t else None,
                "conversion_interval": [low, high],
                "click_rate": counts["clicked"] / n_t if n_t else None,
                "lift": comparison.lift,
                "difference": comparison.difference if n_c and n_t else None,
                "difference_interval": list(comparison.difference_interval)
                if n_c and n_t
                else None,
                "p_value": comparison.p_value,
                "significant": comparison.significant,
                "verdict": verdict_text(name, comparison, n_t, n_c),
            }
        )
    low, high = wilson_interval(conv_c, n_c)
    return {
        "holdout": {
            "eligible": n_c,
            "converted": conv_c,
            "conversion_rate": holdout_rate,
            "conversion_interval": [low, high],
        },
        "variants": out_variants,
    }

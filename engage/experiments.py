"""Experiment results: per variant counts, conversion with a 95% interval, lift vs holdout.

Treatment conversion is counted after the delivery was shown; the holdout's after it was
decided (the moment it would have been shown). Lift is tested with a two-sided two-proportion
z-test against the holdout group.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
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


# --- KPIs: sample size and the comparison of one group against the holdout ---------------------

Z_POWER_80 = 0.8416212335729143  # one-sided z of power 0.8


def sample_size_per_group(
    *, baseline: float, relative_effect: float, z_alpha: float = Z95, z_power: float = Z_POWER_80
) -> int | None:
    """People needed in each group to detect a relative change of `relative_effect` from a
    `baseline` rate with a two-sided test at alpha 0.05 and power 0.8 (two proportions):

        p1 = baseline, p2 = baseline × (1 + effect), p̄ = (p1 + p2) / 2
        n = (z_α/2 · √(2 p̄ (1 − p̄)) + z_β · √(p1 (1 − p1) + p2 (1 − p2)))² / (p2 − p1)²

    None when it cannot be estimated (no baseline conversions yet, or no effect asked).
    """
    p1 = baseline
    p2 = min(p1 * (1 + relative_effect), 0.9999)
    if p1 <= 0 or p1 >= 1 or p2 == p1:
        return None
    p_bar = (p1 + p2) / 2
    top = z_alpha * math.sqrt(2 * p_bar * (1 - p_bar)) + z_power * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2)
    )
    return math.ceil(top * top / ((p2 - p1) ** 2))


def group_rate(converted: int, n: int) -> dict[str, Any]:
    low, high = wilson_interval(converted, n)
    return {
        "people": n,
        "converted": converted,
        "rate": converted / n if n else None,
        "rate_interval": [low, high],
    }


def group_comparison(
    *, name: str, converted: int, n: int, holdout_converted: int, holdout_n: int
) -> dict[str, Any]:
    """One group's KPI against the holdout: rate, lift with its 95% interval, p, verdict.

    The lift interval is the difference's 95% interval divided by the holdout rate (the
    holdout rate taken as known), so it reads in the same relative terms as the lift.
    """
    comparison = two_proportion_test(converted, n, holdout_converted, holdout_n)
    measurable = n > 0 and holdout_n > 0
    p_c = holdout_converted / holdout_n if holdout_n else 0.0
    lift_interval = (
        [comparison.difference_interval[0] / p_c, comparison.difference_interval[1] / p_c]
        if measurable and p_c > 0
        else None
    )
    return {
        **group_rate(converted, n),
        "lift": comparison.lift,
        "lift_interval": lift_interval,
        "difference": comparison.difference if measurable else None,
        "difference_interval": list(comparison.difference_interval) if measurable else None,
        "p_value": comparison.p_value,
        "significant": comparison.significant,
        "verdict": verdict_text(name, comparison, n, holdout_n),
    }


# --- adaptive allocation: Thompson sampling over variants --------------------------------------

ADAPTIVE = "adaptive"
THOMPSON_DRAWS = 20_000
# Every variant keeps at least this share of the variant traffic, so a variant that looks worse
# early still gathers the data that could prove it better (and its results stay measurable).
MIN_VARIANT_SHARE = 0.05
WEIGHT_SCALE = 10_000


def thompson_shares(
    counts: Mapping[str, tuple[int, int]],
    *,
    rng: random.Random,
    draws: int = THOMPSON_DRAWS,
    min_share: float = MIN_VARIANT_SHARE,
) -> dict[str, float]:
    """Traffic share per variant: the posterior probability that it has the best rate.

    `counts` maps variant → (exposed people, converted). Each variant's rate has a
    Beta(1 + converted, 1 + people − converted) posterior (uniform prior); the share is how
    often its draw is the largest over `draws` joint draws, then raised to `min_share` and
    renormalised. Pure given `rng`.
    """
    names = list(counts)
    if not names:
        return {}
    wins = dict.fromkeys(names, 0)
    params = [(1 + conv, 1 + max(n - conv, 0)) for n, conv in (counts[v] for v in names)]
    for _ in range(draws):
        samples = [rng.betavariate(a, b) for a, b in params]
        wins[names[samples.index(max(samples))]] += 1
    floor = min(min_share, 1 / len(names))
    raw = {name: wins[name] / draws for name in names}
    lifted = {name: max(share, floor) for name, share in raw.items()}
    excess = sum(lifted.values()) - 1
    if excess > 0:  # take what the floors added from the variants above the floor
        above = {n: s - floor for n, s in lifted.items() if s > floor}
        total_above = sum(above.values())
        for name, room in above.items():
            lifted[name] -= excess * room / total_above
    return lifted


def shares_to_weights(shares: Mapping[str, float], scale: int = WEIGHT_SCALE) -> dict[str, int]:
    """Integer weights summing to `scale` (largest remainder), for the bucketing engine."""
    exact = {name: share * scale for name, share in shares.items()}
    weights = {name: math.floor(value) for name, value in exact.items()}
    left = scale - sum(weights.values())
    for name in sorted(exact, key=lambda n: exact[n] - weights[n], reverse=True)[:left]:
        weights[name] += 1
    return weights


def allocated_variants(
    campaign: Any, variants: tuple[tuple[str, int], ...]
) -> tuple[tuple[str, int], ...]:
    """The variant weights the engine uses: the stored adaptive weights when the campaign
    allocates adaptively and has some, else the campaign's own weights. A variant added since
    the last recomputation gets the minimum share until the next one."""
    stored = getattr(campaign, "adaptive_weights", None)
    if getattr(campaign, "allocation", "") != ADAPTIVE or not stored or len(variants) < 2:
        return variants
    floor = round(MIN_VARIANT_SHARE * WEIGHT_SCALE)
    weighted = tuple((name, int(stored.get(name, floor))) for name, _ in variants)
    return weighted if any(weight > 0 for _, weight in weighted) else variants

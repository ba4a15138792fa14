"""Deterministic buckets for sampling, holdouts and A/B variants.

A person lands in one of 10,000 buckets (0..9999) from a stable hash of the App, a salt and
their key, so the same person always gets the same answer, in every process and release.
Use a different salt per decision (e.g. "message:12:sample", "message:12:holdout",
"message:12:variant") so that the decisions are independent of each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

BUCKETS = 10_000


def bucket(*, app_id: int, salt: str, person_key: str) -> int:
    """The bucket (0..9999) of a person for one decision.

    BLAKE2b over the length-prefixed parts (so no two different triples hash the same
    input); 64 bits modulo 10,000 leaves a bias below 1e-15.
    """
    parts = [str(app_id), salt, person_key]
    payload = "".join(f"{len(part)}:{part}" for part in parts).encode()
    digest = hashlib.blake2b(payload, digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def percent_to_buckets(percent: float) -> int:
    """How many of the 10,000 buckets a percentage (0–100, two decimals) covers."""
    return max(0, min(BUCKETS, round(percent * 100)))


def in_sample(bucket_number: int, percent: float) -> bool:
    """Whether a bucket falls inside the first `percent` of the bucket space.

    Raising the percentage only ever adds people: everyone in a 10% sample is in the 20% one.
    """
    return bucket_number < percent_to_buckets(percent)


def variant_pick(bucket_number: int, weights: Sequence[tuple[str, float]]) -> str:
    """The variant whose share of the bucket space holds `bucket_number`.

    Weights are relative (e.g. [("a", 1), ("b", 1)] or [("control", 90), ("new", 10)]);
    zero-weight variants are never picked. Raises ValueError without a positive weight.
    """
    total = sum(weight for _, weight in weights if weight > 0)
    if not weights or total <= 0:
        raise ValueError("variant_pick needs at least one variant with a positive weight")
    point = (bucket_number + 0.5) / BUCKETS * total
    acc = 0.0
    chosen = weights[-1][0]
    for name, weight in weights:
        if weight <= 0:
            continue
        acc += weight
        chosen = name
        if point < acc:
            return name
    return chosen

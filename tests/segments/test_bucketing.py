"""Deterministic buckets: stable per person, independent per salt, uniform over 0..9999."""

from __future__ import annotations

from collections import Counter

import pytest

from segments.bucketing import BUCKETS, bucket, in_sample, variant_pick

KEYS = [f"u:{i}" for i in range(100_000)]


def test_same_inputs_same_bucket_forever() -> None:
    # Pinned values: a change of hash, encoding or modulus would move everyone's bucket.
    assert bucket(app_id=1, salt="message:12:sample", person_key="u:42") == 5751
    assert bucket(app_id=1, salt="message:12:sample", person_key="u:ü") == 226
    assert [bucket(app_id=7, salt="s", person_key=k) for k in ("a", "b", "c")] == [358, 5354, 8128]


def test_every_part_matters_and_parts_cannot_shift() -> None:
    base = bucket(app_id=1, salt="ab", person_key="c")
    assert bucket(app_id=2, salt="ab", person_key="c") != base
    assert bucket(app_id=1, salt="abx", person_key="c") != base
    assert bucket(app_id=1, salt="ab", person_key="d") != base
    # "a"+"bc" and "ab"+"c" are different inputs, not one string.
    assert bucket(app_id=1, salt="a", person_key="bc") != base


def test_buckets_are_uniform() -> None:
    counts = Counter(bucket(app_id=3, salt="survey:9:sample", person_key=k) // 100 for k in KEYS)
    assert set(counts) == set(range(100))
    expected = len(KEYS) / 100
    chi_square = sum((n - expected) ** 2 / expected for n in counts.values())
    # 99 degrees of freedom: 148.2 is the 0.1% critical value.
    assert chi_square < 148.2
    assert all(
        0 <= b < BUCKETS for b in (bucket(app_id=3, salt="x", person_key=k) for k in KEYS[:1000])
    )


def test_salts_are_independent() -> None:
    # Sample and holdout draws of the same people are not correlated.
    both = sum(
        in_sample(bucket(app_id=1, salt="m:1:sample", person_key=k), 50)
        and in_sample(bucket(app_id=1, salt="m:1:holdout", person_key=k), 50)
        for k in KEYS[:20_000]
    )
    assert 4700 < both < 5300


def test_in_sample_grows_monotonically() -> None:
    assert not in_sample(0, 0)
    assert in_sample(0, 0.01)
    assert not in_sample(1, 0.01)
    assert in_sample(9999, 100)
    assert in_sample(4999, 50)
    assert not in_sample(5000, 50)
    buckets = [bucket(app_id=1, salt="s", person_key=k) for k in KEYS[:10_000]]
    ten = {b for b in buckets if in_sample(b, 10)}
    twenty = {b for b in buckets if in_sample(b, 20)}
    assert ten < twenty
    assert 900 < sum(in_sample(b, 10) for b in buckets) < 1100


def test_variant_pick_follows_weights() -> None:
    weights = [("control", 70), ("new", 20), ("bold", 10), ("off", 0)]
    picks = Counter(variant_pick(bucket(app_id=1, salt="v", person_key=k), weights) for k in KEYS)
    assert set(picks) == {"control", "new", "bold"}
    assert abs(picks["control"] / len(KEYS) - 0.7) < 0.01
    assert abs(picks["new"] / len(KEYS) - 0.2) < 0.01
    assert variant_pick(0, [("a", 1), ("b", 1)]) == "a"
    assert variant_pick(9999, [("a", 1), ("b", 1)]) == "b"
    with pytest.raises(ValueError, match="positive weight"):
        variant_pick(5, [("a", 0)])

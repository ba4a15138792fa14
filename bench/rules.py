"""Rules benchmark: our compiled predicate against GrowthBook's `evalCondition`, side by side.

The same generated conditions (attributes, nested groups, regexes, event counts from in-memory
counters) are evaluated over the same people by both engines: ours on the parsed condition
compiled once into closures, GrowthBook's Python SDK on the equivalent Mongo-style condition
(event counts become attributes such as `events.export_clicked.30d`). Only leaves GrowthBook can
express are generated (no relative dates, no `where`, no segments). Prints µs per evaluation
for both and the ratio, plus how often the two engines agree (they differ by design on a few
points, e.g. `neq` on a missing attribute, which is false here and true in GrowthBook).

    .venv/bin/python bench/rules.py [--conditions 520] [--people 10000] [--seed 7]

Pure Python, no database; about 30 s on 2 cores. Times are CPU time of this process.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "engage.settings")

from growthbook.core import evalCondition

from segments.conditions import (
    InMemoryFacts,
    compile_predicate,
    parse_condition,
)

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
PLANS = ["free", "starter", "pro", "team", "enterprise"]
COUNTRIES = ["CH", "DE", "FR", "US", "GB", "JP", "BR", "IN"]
CITIES = ["Zürich", "Genève", "Berlin", "Paris", "New York", "東京", "São Paulo", "Mumbai"]
TAGS = ["beta", "admin", "billing", "api", "mobile", "churn-risk", "vip"]
DOMAINS = ["acme.com", "example.org", "globex.io", "initech.co.uk", "gmail.com"]
EVENTS = ["export_clicked", "report_viewed", "invite_sent", "page_view", "checkout_completed"]
WINDOWS: list[int | None] = [7, 30, None]
LEAF_KINDS = [
    "plan", "plan_in", "seats", "mrr", "email", "regex", "country", "tags", "beta", "set", "date",
    "city",
]  # fmt: skip
REGEXES = [
    r"@(acme|globex)\.",
    r"^[a-z]+\.[a-z]+@",
    r"\.co\.uk$",
    r"^(free|starter)$",
    r"^[A-Z]{2}$",
    r"\d{3}",
    r"(?i)^ZÜ",
    r"^/reports/\d+",
]


def person(
    rng: random.Random, index: int
) -> tuple[dict[str, Any], dict[tuple[str, int | None], int]]:
    """Attributes and event counters of one generated person."""
    first = rng.choice(["ada", "grace", "alan", "linus", "margaret", "dennis", "barbara"])
    attributes: dict[str, Any] = {
        "plan": rng.choice(PLANS),
        "seats": rng.randint(1, 500),
        "mrr": round(rng.uniform(0, 5000), 2),
        "email": f"{first}.{index}@{rng.choice(DOMAINS)}",
        "country": rng.choice(COUNTRIES),
        "city": rng.choice(CITIES),
        "beta": rng.random() < 0.3,
        "tags": rng.sample(TAGS, rng.randint(0, 3)),
        "signed_up": (NOW - timedelta(days=rng.randint(0, 900))).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "last_path": f"/reports/{rng.randint(1, 9999)}" if rng.random() < 0.5 else "/home",
    }
    for key in ("mrr", "city", "beta", "last_path"):
        if rng.random() < 0.1:
            del attributes[key]  # some people lack some attributes
    counts: dict[tuple[str, int | None], int] = {}
    for name in EVENTS:
        total = int(rng.expovariate(1 / 20)) if rng.random() < 0.7 else 0
        month = min(total, int(total * rng.random()))
        week = min(month, int(month * rng.random()))
        counts.update({(name, None): total, (name, 30): month, (name, 7): week})
    return attributes, counts


def attribute_leaf(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(LEAF_KINDS)
    if kind == "plan":
        return {"attribute": "plan", "op": rng.choice(["eq", "neq"]), "value": rng.choice(PLANS)}
    if kind == "plan_in":
        op = rng.choice(["in", "not_in"])
        return {"attribute": "plan", "op": op, "value": rng.sample(PLANS, rng.randint(1, 3))}
    if kind == "seats":
        op = rng.choice(["gt", "gte", "lt", "lte", "between"])
        if op == "between":
            low = rng.randint(1, 250)
            return {"attribute": "seats", "op": op, "value": [low, low + rng.randint(0, 250)]}
        return {"attribute": "seats", "op": op, "value": rng.randint(1, 500)}
    if kind == "mrr":
        return {"attribute": "mrr", "op": rng.choice(["gt", "lt"]), "value": rng.randint(0, 5000)}
    if kind == "email":
        op = rng.choice(["contains", "ends_with", "starts_with"])
        value = {
            "contains": "@acme",
            "ends_with": "." + rng.choice(["com", "io"]),
            "starts_with": "ada",
        }[op]
        return {"attribute": "email", "op": op, "value": value}
    if kind == "regex":
        pattern = rng.choice(REGEXES)
        target = {r"^[A-Z]{2}$": "country", r"(?i)^ZÜ": "city", r"^/reports/\d+": "last_path"}
        return {"attribute": target.get(pattern, "email"), "op": "regex", "value": pattern}
    if kind == "country":
        return {"attribute": "country", "op": "in", "value": rng.sample(COUNTRIES, 3)}
    if kind == "tags":
        return {
            "attribute": "tags",
            "op": rng.choice(["contains", "not_contains"]),
            "value": rng.choice(TAGS),
        }
    if kind == "beta":
        return {"attribute": "beta", "op": "eq", "value": rng.random() < 0.5}
    if kind == "set":
        key = rng.choice(["mrr", "city", "beta", "last_path"])
        return {"attribute": key, "op": rng.choice(["is_set", "is_not_set"])}
    if kind == "city":
        return {"attribute": "city", "op": "eq", "value": rng.choice(CITIES)}
    day = (NOW - timedelta(days=rng.randint(0, 900))).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"attribute": "signed_up", "op": rng.choice(["before", "after"]), "value": day}


def event_leaf(rng: random.Random) -> dict[str, Any]:
    leaf: dict[str, Any] = {"event": rng.choice(EVENTS)}
    window = rng.choice(WINDOWS)
    if window is not None:
        leaf["within_days"] = window
    if rng.random() < 0.7:
        op = rng.choice(["gte", "gt", "lt", "eq", "between"])
        value: Any = [1, rng.randint(2, 40)] if op == "between" else rng.randint(0, 30)
        leaf["count"] = {"op": op, "value": value}
    return leaf


def condition(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    roll = rng.random()
    if depth < 3 and roll < 0.45:
        group = rng.choice(["all", "all", "any"])
        return {group: [condition(rng, depth + 1) for _ in range(rng.randint(2, 4))]}
    if depth < 3 and roll < 0.5:
        return {"not": condition(rng, depth + 1)}
    return event_leaf(rng) if rng.random() < 0.35 else attribute_leaf(rng)


# ---- the equivalent GrowthBook condition --------------------------------------------------

_GB_OPS = {"eq": "$eq", "neq": "$ne", "gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte"}


def _gb_compare(op: str, value: Any) -> dict[str, Any]:
    if op == "between":
        return {"$gte": value[0], "$lte": value[1]}
    return {_GB_OPS[op]: value}


def to_growthbook(data: dict[str, Any]) -> dict[str, Any]:
    if "all" in data:
        return {"$and": [to_growthbook(child) for child in data["all"]]}
    if "any" in data:
        return {"$or": [to_growthbook(child) for child in data["any"]]}
    if "not" in data:
        return {"$not": to_growthbook(data["not"])}
    if "event" in data:
        window = data.get("within_days")
        path = f"events.{data['event']}.{f'{window}d' if window else 'all'}"
        count = data.get("count", {"op": "gte", "value": 1})
        return {path: _gb_compare(count["op"], count["value"])}
    key, op, value = data["attribute"], data["op"], data.get("value")
    if op in _GB_OPS or op == "between":
        return {key: _gb_compare(op, value)}
    if op in ("in", "not_in"):
        return {key: {"$in" if op == "in" else "$nin": value}}
    if op in ("contains", "not_contains"):
        # Arrays hold elements; strings hold substrings.
        test = {"$elemMatch": {"$eq": value}} if key == "tags" else {"$regex": re.escape(value)}
        return {key: test if op == "contains" else {"$not": test}}
    if op == "starts_with":
        return {key: {"$regex": "^" + re.escape(value)}}
    if op == "ends_with":
        return {key: {"$regex": re.escape(value) + "$"}}
    if op == "regex":
        return {key: {"$regex": value}}
    if op in ("is_set", "is_not_set"):
        return {key: {"$exists": op == "is_set"}}
    if op in ("before", "after"):  # same-format ISO strings order like their instants
        return {key: {"$lt" if op == "before" else "$gt": value}}
    raise ValueError(f"GrowthBook cannot express {op}")


def growthbook_attributes(
    attributes: dict[str, Any], counts: dict[tuple[str, int | None], int]
) -> dict[str, Any]:
    events: dict[str, dict[str, int]] = {}
    for (name, window), count in counts.items():
        events.setdefault(name, {})[f"{window}d" if window else "all"] = count
    return {**attributes, "events": events}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conditions", type=int, default=520)
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument(
        "--compare-people",
        type=int,
        default=2_000,
        help="people (an even spread of them) both engines decide side by side; GrowthBook "
        "takes ~15 µs per evaluation, so all 10,000 would not fit the minute",
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    raw = [condition(rng) for _ in range(args.conditions)]
    parsed = [parse_condition(data) for data in raw]
    growthbook = [to_growthbook(data) for data in raw]
    population = [person(rng, i) for i in range(args.people)]
    facts = [InMemoryFacts(attributes=a, now=NOW, counts=c) for a, c in population]
    step = max(1, len(population) // args.compare_people)
    sample = range(0, len(population), step)
    # Both engines get their own freshly built inputs for the same people.
    our_sample = [
        InMemoryFacts(attributes=population[i][0], now=NOW, counts=population[i][1]) for i in sample
    ]
    gb_sample = [growthbook_attributes(*population[i]) for i in sample]
    leaves = sum(len(re.findall(r"'(?:attribute|event)'", repr(data))) for data in raw)
    print(
        f"{len(raw)} conditions ({leaves / len(raw):.1f} leaves on average), "
        f"{len(population):,} people, seed {args.seed}"
    )

    # Setup objects (people, facts, conditions) are long-lived: freeze them out of the
    # collector's scans, as CONVENTIONS.md suggests for servers after start-up, so that a
    # collection that one engine's garbage triggers does not scan them on the other's clock.
    gc.collect()
    gc.freeze()

    started = time.process_time()
    predicates = [compile_predicate(condition) for condition in parsed]
    compile_ms = (time.process_time() - started) * 1000
    print(f"compile: {compile_ms:.1f} ms for {len(raw)} conditions (parse excluded)")

    # Side by side on the same pairs, alternating per condition, in CPU time of this process:
    # load from other processes on the machine falls on neither engine more than the other.
    ours_s = theirs_s = 0.0
    agree = matched = 0
    for predicate, gb_condition in zip(predicates, growthbook, strict=True):
        started = time.process_time()
        ours = [predicate(person_facts) for person_facts in our_sample]
        ours_s += time.process_time() - started
        started = time.process_time()
        theirs = [evalCondition(attributes, gb_condition) for attributes in gb_sample]
        theirs_s += time.process_time() - started
        agree += sum(a == b for a, b in zip(ours, theirs, strict=True))
        matched += sum(ours)
    pairs = len(raw) * len(our_sample)
    ours_us, theirs_us = ours_s / pairs * 1e6, theirs_s / pairs * 1e6
    print(f"side by side: {len(raw)} conditions × {len(our_sample):,} people = {pairs:,} each")
    print(f"  ours        {ours_us:7.2f} µs per evaluation  ({ours_s:.2f} s)")
    print(f"  GrowthBook  {theirs_us:7.2f} µs per evaluation  ({theirs_s:.2f} s)")
    print(f"  ratio       {theirs_us / ours_us:7.1f}× faster (target ≥ 5×)")
    print(
        f"  {matched / pairs:.1%} of evaluations match; the engines agree on {agree / pairs:.2%} "
        "(the rest differ by design, e.g. neq on a missing attribute)"
    )

    started = time.process_time()
    for predicate in predicates:
        for person_facts in facts:
            predicate(person_facts)
    full_s = time.process_time() - started
    evaluations = len(raw) * len(facts)
    print(
        f"ours over everyone: {len(raw)} × {len(facts):,} = {evaluations:,} evaluations, "
        f"{full_s / evaluations * 1e6:.2f} µs each ({full_s:.2f} s)"
    )


if __name__ == "__main__":
    main()

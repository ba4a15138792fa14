"""The SQL compiler: a condition becomes a `Q` over `Person`, one query on either database.

Attribute and property tests are custom boolean expressions that write the semantics of
`segments.conditions.operators` per vendor: JSON kinds through `jsonb_typeof` / `json_type`,
string order in code points (`COLLATE "C"` on PostgreSQL, BINARY on SQLite), regexes in the
dialect of `segments.conditions.regex` (PostgreSQL's engine on a translated pattern, RE2 inside
SQLite through a registered function), ISO dates as integer microseconds (arithmetic in SQL on
PostgreSQL; the Python parser registered in SQLite). Every test yields TRUE or FALSE, never
NULL, so `not` is exact. Event leaves are semi-joins the database plans once: per-person totals
from the per-day counters (joined to an indexed event query for the part of the boundary day
inside the window), or from matching events for leaves with `where`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from functools import reduce
from typing import Any, Literal
from weakref import WeakKeyDictionary

from django.db import NotSupportedError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (
    BooleanField,
    Count,
    Expression,
    F,
    Q,
    QuerySet,
)
from django.db.models.sql.compiler import SQLCompiler

from engage.models import App
from segments.conditions.operators import (
    DATE_OPS,
    MAX_OFFSET_HOURS,
    MICROS_PER_DAY,
    ORDER_OPS,
    Op,
    Scalar,
    Value,
    count_test,
    datetime_micros,
    iso_instant,
    iso_shapes,
    kind_of,
    regex_search,
)
from segments.conditions.predicate import MAX_SEGMENT_DEPTH, SegmentResolver, window_start
from segments.conditions.regex import regex_translate
from segments.conditions.tree import (
    AllOf,
    AnyOf,
    AttributeCondition,
    Condition,
    ConditionError,
    ConditionInvalid,
    ContextCondition,
    EventCondition,
    Not,
    PropertyFilter,
    SegmentCondition,
)
from segments.models import Event, EventDailyCount, Person

ContextPolicy = Literal["refuse", "upper_bound"]
Fragment = tuple[str, list[Any]]


class _Param:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


def _sql(template: str, **parts: Fragment | _Param) -> Fragment:
    """Fill `{name}` slots with fragments or parameters, keeping parameters in slot order."""
    out: list[str] = []
    params: list[Any] = []
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        out.append(template[position : match.start()])
        part = parts[match[1]]
        if isinstance(part, _Param):
            out.append("%s")
            params.append(part.value)
        else:
            out.append(part[0])
            params.extend(part[1])
        position = match.end()
    out.append(template[position:])
    return "".join(out), params


def _number_param(value: int | float) -> int | Decimal:
    # PostgreSQL compares JSON numbers as exact decimals; a float goes as its shortest repr.
    return value if isinstance(value, int) else Decimal(repr(value))


def _json_param(value: Any) -> _Param:
    return _Param(json.dumps(value))


# ---- SQLite: functions registered on the connection --------------------------------------


def _sqlite_regex_search(pattern: Any, text: Any) -> int | None:
    if not isinstance(pattern, str) or not isinstance(text, str):
        return None
    try:
        return int(regex_search(pattern)(text))
    except Exception:  # a function raising inside SQLite fails the whole query
        return 0


def _sqlite_iso_instant(text: Any) -> int | None:
    return iso_instant(text) if isinstance(text, str) else None


# Django connection wrapper → the raw SQLite connection that has the functions (a wrapper
# reconnects with a new raw connection, which needs them again).
_installed: WeakKeyDictionary[BaseDatabaseWrapper, Any] = WeakKeyDictionary()


def _sqlite_functions_install(connection: BaseDatabaseWrapper) -> None:
    connection.ensure_connection()
    raw = connection.connection
    if _installed.get(connection) is raw:
        return
    raw.create_function("engage_regex_search", 2, _sqlite_regex_search, deterministic=True)
    raw.create_function("engage_iso_instant", 1, _sqlite_iso_instant, deterministic=True)
    _installed[connection] = raw


# ---- one test on one key of a JSON column ------------------------------------------------


def _kinds_sqlite(kind: str) -> str:
    return {
        "string": "('text')",
        "number": "('integer', 'real')",
        "boolean": "('true', 'false')",
    }[kind]


class _Dialect:
    """The SQL of one operator for one vendor, given the column and the key."""

    def __init__(self, column: Fragment, key: str) -> None:
        self.column = column
        self.key = key

    def test(self, op: Op, value: Any, now: datetime) -> Fragment:
        if op is Op.IS_SET:
            return self.is_set()
        if op is Op.IS_NOT_SET:
            sql, params = self.is_set()
            return f"NOT ({sql})", params
        if op is Op.EQ:
            return self.equal(value, negate=False)
        if op is Op.NEQ:
            return self.equal(value, negate=True)
        if op in (Op.IN, Op.NOT_IN):
            return self.member(value, negate=op is Op.NOT_IN)
        if op in (Op.CONTAINS, Op.NOT_CONTAINS):
            return self.contains(value, negate=op is Op.NOT_CONTAINS)
        if op is Op.STARTS_WITH:
            return self.starts_with(value)
        if op is Op.ENDS_WITH:
            return self.ends_with(value)
        if op is Op.REGEX:
            return self.regex(value)
        if op in ORDER_OPS:
            symbol = {Op.GT: ">", Op.GTE: ">=", Op.LT: "<", Op.LTE: "<="}[op]
            return self.order([(symbol, value)])
        if op is Op.BETWEEN:
            low, high = value
            return self.order([(">=", low), ("<=", high)])
        now_micros = datetime_micros(now)
        if op in DATE_OPS:
            bound = iso_instant(value)
            return self.instant_compare("<" if op is Op.BEFORE else ">", bound)
        span = value * MICROS_PER_DAY
        if op is Op.WITHIN_LAST_DAYS:
            low_sql, low_params = self.instant_compare(">=", now_micros - span)
            high_sql, high_params = self.instant_compare("<=", now_micros)
            return f"({low_sql}) AND ({high_sql})", low_params + high_params
        return self.instant_compare("<", now_micros - span)

    # The vendor-specific parts.
    def is_set(self) -> Fragment:
        raise NotImplementedError

    def equal(self, value: Scalar, *, negate: bool) -> Fragment:
        raise NotImplementedError

    def member(self, values: tuple[Scalar, ...], *, negate: bool) -> Fragment:
        raise NotImplementedError

    def contains(self, value: Scalar, *, negate: bool) -> Fragment:
        raise NotImplementedError

    def starts_with(self, value: str) -> Fragment:
        raise NotImplementedError

    def ends_with(self, value: str) -> Fragment:
        raise NotImplementedError

    def regex(self, pattern: str) -> Fragment:
        raise NotImplementedError

    def order(self, bounds: list[tuple[str, Any]]) -> Fragment:
        raise NotImplementedError

    def instant_compare(self, symbol: str, bound: int | None) -> Fragment:
        raise NotImplementedError


class _PostgreSQL(_Dialect):
    @property
    def json(self) -> Fragment:
        return _sql("({col} -> {key}::text)", col=self.column, key=_Param(self.key))

    @property
    def text(self) -> Fragment:
        return _sql("({col} ->> {key}::text)", col=self.column, key=_Param(self.key))

    def kind_is(self, kind: str) -> Fragment:
        return _sql("jsonb_typeof({x}) = {kind}", x=self.json, kind=_Param(kind))

    def is_set(self) -> Fragment:
        return _sql("COALESCE(jsonb_typeof({x}), 'null') <> 'null'", x=self.json)

    def equal(self, value: Scalar, *, negate: bool) -> Fragment:
        if not negate:
            return _sql("{x} = {v}::jsonb", x=self.json, v=_json_param(value))
        return _sql(
            "{kind} AND {x} <> {v}::jsonb",
            kind=self.kind_is(kind_of(value)),
            x=self.json,
            v=_json_param(value),
        )

    def member(self, values: tuple[Scalar, ...], *, negate: bool) -> Fragment:
        slots = ", ".join(f"{{v{i}}}::jsonb" for i in range(len(values)))
        items = {f"v{i}": _json_param(value) for i, value in enumerate(values)}
        if not negate:
            return _sql(f"{{x}} IN ({slots})", x=self.json, **items)
        kinds = sorted({kind_of(value) for value in values})
        kind_slots = ", ".join(f"{{k{i}}}" for i in range(len(kinds)))
        kind_items = {f"k{i}": _Param(kind) for i, kind in enumerate(kinds)}
        return _sql(
            f"jsonb_typeof({{x}}) IN ({kind_slots}) AND {{x}} NOT IN ({slots})",
            x=self.json,
            **kind_items,
            **items,
        )

    def contains(self, value: Scalar, *, negate: bool) -> Fragment:
        # `@>` with a one-element array: an element of the same kind and value, at top level.
        in_array = _sql("{x} @> {arr}::jsonb", x=self.json, arr=_json_param([value]))
        if isinstance(value, str):
            in_string = _sql("strpos({t}, {v}) > 0", t=self.text, v=_Param(value))
            template = (
                "CASE jsonb_typeof({x}) WHEN 'string' THEN {s} WHEN 'array' THEN {a} ELSE FALSE END"
                if not negate
                else "CASE jsonb_typeof({x}) WHEN 'string' THEN NOT ({s}) "
                "WHEN 'array' THEN NOT ({a}) ELSE FALSE END"
            )
            return _sql(template, x=self.json, s=in_string, a=in_array)
        template = "{kind} AND NOT ({a})" if negate else "{kind} AND {a}"
        return _sql(template, kind=self.kind_is("array"), a=in_array)

    def starts_with(self, value: str) -> Fragment:
        return _sql(
            "{kind} AND starts_with({t}, {v})",
            kind=self.kind_is("string"),
            t=self.text,
            v=_Param(value),
        )

    def ends_with(self, value: str) -> Fragment:
        return _sql(
            "{kind} AND right({t}, {n}) = {v}",
            kind=self.kind_is("string"),
            t=self.text,
            n=_Param(len(value)),
            v=_Param(value),
        )

    def regex(self, pattern: str) -> Fragment:
        return _sql(
            '{kind} AND {t} COLLATE "C" ~ {p}',
            kind=self.kind_is("string"),
            t=self.text,
            p=_Param(regex_translate(pattern).postgresql),
        )

    def order(self, bounds: list[tuple[str, Any]]) -> Fragment:
        if isinstance(bounds[0][1], str):
            parts = [
                _sql(f'{{t}} COLLATE "C" {symbol} {{v}}', t=self.text, v=_Param(bound))
                for symbol, bound in bounds
            ]
            kind = self.kind_is("string")
        else:
            parts = [
                _sql(f"{{x}} {symbol} {{v}}::jsonb", x=self.json, v=_json_param(bound))
                for symbol, bound in bounds
            ]
            kind = self.kind_is("number")
        return _join_and([kind, *parts])

    def instant_compare(self, symbol: str, bound: int | None) -> Fragment:
        moment = None if bound is None else EPOCH + timedelta(microseconds=bound)
        return _sql(
            f"{{kind}} AND {_PG_INSTANT} {symbol} {{bound}}",
            kind=self.kind_is("string"),
            t=self.text,
            bound=_Param(moment),
        )


def _pg_instant_sql() -> str:
    """The instant (timestamptz) of the ISO string in `{t}`, or NULL: `operators.iso_instant`
    in SQL. The format is checked by the string's shape (digits mapped to 0) against the
    finite list the pattern allows, and ranges by two-character comparisons: both far cheaper
    per row than PostgreSQL's regex engine or integer casts. Every cast sits behind the checks
    of its CASE, so no string can make the query fail."""
    s = "iso.s"
    shapes = ", ".join(f"'{shape}'" for shape in iso_shapes())
    shape_ok = f"translate({s}, '123456789', '000000000') IN ({shapes})"
    year = f"substr({s}, 1, 4)::int"
    leap = f"(mod({year}, 4) = 0 AND (mod({year}, 100) <> 0 OR mod({year}, 400) = 0))"
    month = f"substr({s}, 6, 2)"
    last_day = (
        f"(CASE {month} WHEN '02' THEN (CASE WHEN {leap} THEN '29' ELSE '28' END) "
        f"WHEN '04' THEN '30' WHEN '06' THEN '30' WHEN '09' THEN '30' WHEN '11' THEN '30' "
        f"ELSE '31' END)"
    )
    offset_sign = f"substr({s}, length({s}) - 5, 1)"
    signed = f"(length({s}) > 16 AND {offset_sign} IN ('+', '-'))"
    zone_length = f"(CASE WHEN right({s}, 1) = 'Z' THEN 1 WHEN {signed} THEN 6 ELSE 0 END)"
    ranges_ok = (
        f"substr({s}, 1, 4) <> '0000' AND {month} BETWEEN '01' AND '12' "
        f"AND substr({s}, 9, 2) BETWEEN '01' AND {last_day} "
        f"AND (length({s}) = 10 OR (substr({s}, 12, 2) <= '23' AND substr({s}, 15, 2) <= '59' "
        f"AND (substr({s}, 17, 1) <> ':' OR substr({s}, 18, 2) <= '59') "
        f"AND (NOT {signed} OR (substr({s}, length({s}) - 4, 2) <= '{MAX_OFFSET_HOURS}' "
        f"AND right({s}, 2) <= '59'))))"
    )
    # Fractions beyond microseconds are dropped, as in Python (PostgreSQL would round).
    fraction_length = (
        f"(CASE WHEN substr({s}, 20, 1) = '.' THEN length({s}) - 20 - {zone_length} ELSE 0 END)"
    )
    text = (
        f"(CASE WHEN {fraction_length} > 6 "
        f"THEN substr({s}, 1, 26) || right({s}, {zone_length}) ELSE {s} END)"
    )
    instant = (
        f"(CASE WHEN {zone_length} > 0 THEN {text}::timestamptz "
        f"ELSE {text}::timestamp AT TIME ZONE 'UTC' END)"
    )
    body = f"CASE WHEN {shape_ok} THEN (CASE WHEN {ranges_ok} THEN {instant} END) END"
    # Only constants of this module go into the text; the value comes in through {t}.
    return f'(SELECT {body} FROM (SELECT {{t}} COLLATE "C" AS s) AS iso)'  # noqa: S608


_PG_INSTANT = _pg_instant_sql()
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _SQLite(_Dialect):
    @property
    def path(self) -> _Param:
        # Django writes JSON with ASCII escapes, and SQLite compares a quoted label with the
        # stored text as it is: the key is escaped the same way (as Django's KeyTransform does).
        return _Param(f"$.{json.dumps(self.key)}")

    @property
    def kind(self) -> Fragment:
        return _sql("json_type({col}, {p})", col=self.column, p=self.path)

    @property
    def value(self) -> Fragment:
        return _sql("json_extract({col}, {p})", col=self.column, p=self.path)

    def typed(self, kind: str, template: str, **parts: Fragment | _Param) -> Fragment:
        return _sql(
            f"{{kind}} IN {_kinds_sqlite(kind)} AND {template}",
            kind=self.kind,
            val=self.value,
            **parts,
        )

    def is_set(self) -> Fragment:
        return _sql("COALESCE({kind}, 'null') <> 'null'", kind=self.kind)

    def equal(self, value: Scalar, *, negate: bool) -> Fragment:
        if isinstance(value, bool):
            wanted = ("false" if value else "true") if negate else ("true" if value else "false")
            return _sql("{kind} = {w}", kind=self.kind, w=_Param(wanted))
        symbol = "<>" if negate else "="
        return self.typed(kind_of(value), f"{{val}} {symbol} {{v}}", v=_Param(value))

    def member(self, values: tuple[Scalar, ...], *, negate: bool) -> Fragment:
        parts: list[Fragment] = []
        for kind in ("string", "number"):
            pool = [v for v in values if kind_of(v) == kind]
            if not pool:
                continue
            slots = ", ".join(f"{{v{i}}}" for i in range(len(pool)))
            items = {f"v{i}": _Param(v) for i, v in enumerate(pool)}
            symbol = "NOT IN" if negate else "IN"
            parts.append(self.typed(kind, f"{{val}} {symbol} ({slots})", **items))
        booleans = {v for v in values if isinstance(v, bool)}
        if booleans:
            wanted = {False, True} - booleans if negate else booleans
            for flag in sorted(wanted):
                parts.append(_sql("{kind} = {w}", kind=self.kind, w=_Param(str(flag).lower())))
        return _join_or(parts)

    def element_equal(self, value: Scalar) -> Fragment:
        """Inside json_each over the array: the element has `value`'s kind and value."""
        if isinstance(value, bool):
            return _sql("je.type = {w}", w=_Param(str(value).lower()))
        return _sql(
            f"je.type IN {_kinds_sqlite(kind_of(value))} AND je.value = {{v}}", v=_Param(value)
        )

    def contains(self, value: Scalar, *, negate: bool) -> Fragment:
        in_array = _sql(
            "EXISTS (SELECT 1 FROM json_each({col}, {p}) AS je WHERE {eq})",
            col=self.column,
            p=self.path,
            eq=self.element_equal(value),
        )
        if isinstance(value, str):
            in_string = _sql("instr({val}, {v}) > 0", val=self.value, v=_Param(value))
            template = (
                "CASE {kind} WHEN 'text' THEN {s} WHEN 'array' THEN {a} ELSE 0 END"
                if not negate
                else "CASE {kind} WHEN 'text' THEN NOT ({s}) WHEN 'array' THEN NOT ({a}) ELSE 0 END"
            )
            return _sql(template, kind=self.kind, s=in_string, a=in_array)
        template = "{kind} = 'array' AND NOT ({a})" if negate else "{kind} = 'array' AND {a}"
        return _sql(template, kind=self.kind, a=in_array)

    def starts_with(self, value: str) -> Fragment:
        return self.typed(
            "string", "substr({val}, 1, {n}) = {v}", n=_Param(len(value)), v=_Param(value)
        )

    def ends_with(self, value: str) -> Fragment:
        if not value:
            return self.typed("string", "1")
        return self.typed(
            "string", "substr({val}, {n}) = {v}", n=_Param(-len(value)), v=_Param(value)
        )

    def regex(self, pattern: str) -> Fragment:
        return self.typed("string", "engage_regex_search({p}, {val})", p=_Param(pattern))

    def order(self, bounds: list[tuple[str, Any]]) -> Fragment:
        kind = "string" if isinstance(bounds[0][1], str) else "number"
        parts = [
            _sql(f"{{val}} {symbol} {{v}}", val=self.value, v=_Param(bound))
            for symbol, bound in bounds
        ]
        return _join_and([_sql(f"{{kind}} IN {_kinds_sqlite(kind)}", kind=self.kind), *parts])

    def instant_compare(self, symbol: str, bound: int | None) -> Fragment:
        return self.typed("string", f"engage_iso_instant({{val}}) {symbol} {{b}}", b=_Param(bound))


def _join_and(parts: list[Fragment]) -> Fragment:
    return " AND ".join(f"({sql})" for sql, _ in parts), [p for _, ps in parts for p in ps]


def _join_or(parts: list[Fragment]) -> Fragment:
    if not parts:
        return "1 = 0", []
    return " OR ".join(f"({sql})" for sql, _ in parts), [p for _, ps in parts for p in ps]


class JSONKeyTest(Expression):
    """`op value` on one key of a JSON column of the query's model, TRUE or FALSE."""

    output_field = BooleanField()
    conditional = True

    def __init__(self, column: str, key: str, op: Op, value: Value, now: datetime) -> None:
        super().__init__(output_field=BooleanField())
        self.column: Any = F(column)
        self.key = key
        self.op = op
        self.value = value
        self.now = now

    def __repr__(self) -> str:
        return f"JSONKeyTest({self.column!r}, {self.key!r}, {self.op}, {self.value!r})"

    def get_source_expressions(self) -> list[Any]:
        return [self.column]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        (self.column,) = exprs

    def _compile(
        self, dialect: type[_Dialect], compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> Fragment:
        column_sql, column_params = compiler.compile(self.column)
        return dialect((column_sql, list(column_params)), self.key).test(
            self.op, self.value, self.now
        )

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Fragment:
        raise NotSupportedError(f"conditions do not run on {connection.vendor}")

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Fragment:
        sql, params = self._compile(_PostgreSQL, compiler, connection)
        return f"COALESCE(({sql}), FALSE)", params

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Fragment:
        _sqlite_functions_install(connection)
        sql, params = self._compile(_SQLite, compiler, connection)
        return f"COALESCE(({sql}), 0)", params


# ---- the tree ----------------------------------------------------------------------------

TRUE = Q(pk__isnull=False)
FALSE = Q(pk__isnull=True)


def _any_q(parts: list[Q]) -> Q:
    return reduce(lambda a, b: a | b, parts) if parts else FALSE


def _all_q(parts: list[Q]) -> Q:
    return reduce(lambda a, b: a & b, parts) if parts else TRUE


def event_filters_q(where: tuple[PropertyFilter, ...], *, now: datetime) -> Q:
    """A `Q` over `Event` for the `where` filters of an event condition."""
    return _all_q(
        [Q(JSONKeyTest("properties", item.property, item.op, item.value, now)) for item in where]
    )


class _Compiler:
    def __init__(
        self,
        *,
        app_id: int,
        now: datetime,
        resolver: SegmentResolver | None,
        context: ContextPolicy,
    ) -> None:
        self.app_id = app_id
        self.now = now
        self.resolver = resolver
        self.context = context

    def q(self, condition: Condition, *, positive: bool, path: tuple[str, ...]) -> Q:
        if isinstance(condition, AllOf):
            return _all_q([self.q(c, positive=positive, path=path) for c in condition.children])
        if isinstance(condition, AnyOf):
            return _any_q([self.q(c, positive=positive, path=path) for c in condition.children])
        if isinstance(condition, Not):
            return ~self.q(condition.child, positive=not positive, path=path)
        if isinstance(condition, AttributeCondition):
            return Q(
                JSONKeyTest(
                    "attributes", condition.attribute, condition.op, condition.value, self.now
                )
            )
        if isinstance(condition, EventCondition):
            return self.event(condition)
        if isinstance(condition, SegmentCondition):
            return self.segment(condition.slug, positive=positive, path=path)
        return self.context_leaf(condition, positive=positive)

    def context_leaf(self, condition: ContextCondition, *, positive: bool) -> Q:
        if self.context == "refuse":
            raise ConditionInvalid(
                [ConditionError(condition.field, "context conditions cannot be counted in SQL")]
            )
        # Unknown until the moment: assume whatever lets more people in, so that a count is
        # an upper bound (true where it counts positively, false under an odd number of nots).
        return TRUE if positive else FALSE

    def segment(self, slug: str, *, positive: bool, path: tuple[str, ...]) -> Q:
        if slug in path or len(path) >= MAX_SEGMENT_DEPTH:
            return FALSE
        if self.resolver is None:
            raise ValueError(f'condition refers to segment "{slug}" but no resolver was given')
        condition = self.resolver(slug)
        if condition is None:
            return FALSE
        return self.q(condition, positive=positive, path=(*path, slug))

    def event(self, node: EventCondition) -> Q:
        """People whose count passes, as a semi-join the database plans once (not a
        subquery per person). When a count of 0 passes (e.g. "fewer than 2"), people without
        any such event must match too: the complement of those whose count fails."""
        op, value = node.count.op, node.count.value
        zero_passes = count_test(op, value)(0)
        start = window_start(self.now, node.within_days)
        if not node.where:
            test = EventCountTest(
                app_id=self.app_id,
                name=node.event,
                start=start,
                op=op,
                value=value,
                failing=zero_passes,
            )
            return ~Q(test) if zero_passes else Q(test)
        events = Event.objects.filter(app_id=self.app_id, name=node.event)
        if start is not None:
            events = events.filter(timestamp__gte=start)
        counted = (
            events.filter(event_filters_q(node.where, now=self.now))
            .order_by()
            .values("person_id")
            .annotate(n=Count("id"))
        )
        passing = _having_q(op, value)
        if zero_passes:
            return ~Q(pk__in=counted.filter(~passing).values("person_id"))
        return Q(pk__in=counted.filter(passing).values("person_id"))


def _having_q(op: Op, value: Any) -> Q:
    """The count test on the annotation `n`."""
    if op is Op.BETWEEN:
        return Q(n__range=tuple(value))
    if op is Op.NEQ:
        return ~Q(n=value)
    lookup = {Op.EQ: "exact", Op.GT: "gt", Op.GTE: "gte", Op.LT: "lt", Op.LTE: "lte"}[op]
    return Q(**{f"n__{lookup}": value})


_HAVING_SQL = {Op.EQ: "=", Op.NEQ: "<>", Op.GT: ">", Op.GTE: ">=", Op.LT: "<", Op.LTE: "<="}


class EventCountTest(Expression):
    """The person is among those with `name` events since `start` (all time when None) whose
    count passes `op value` (fails it, with `failing`), counted from the per-day counters:
    whole UTC days after the boundary day, plus the boundary day's events inside the window
    (indexed on app, name, timestamp) for people with a counter on the boundary day, as
    `person_facts_load` counts them. People without such events are never among them.
    `NOT` of it is exact: the subquery never yields NULL.

    The shape is chosen for the planner: each source is grouped on its own (a table's
    statistics then estimate the number of people, where a grouped `UNION ALL` of both gets
    a default of 200 and a `HAVING` of a third of that), and the boundary day's events join
    the counters' totals. With the rows estimated near the truth, PostgreSQL hash-joins the
    people; with a handful estimated, it nested-loops them, quadratic in the matches.
    """

    output_field = BooleanField()
    conditional = True

    def __init__(
        self,
        *,
        app_id: int,
        name: str,
        start: datetime | None,
        op: Op,
        value: Any,
        failing: bool = False,
    ) -> None:
        super().__init__(output_field=BooleanField())
        self.pk: Any = F("pk")
        self.app_id = app_id
        self.name = name
        self.start = start
        self.op = op
        self.value = value
        self.failing = failing

    def __repr__(self) -> str:
        verdict = "fails" if self.failing else "passes"
        return (
            f"EventCountTest({self.name!r} since {self.start} {verdict} {self.op} {self.value!r})"
        )

    def get_source_expressions(self) -> list[Any]:
        return [self.pk]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        (self.pk,) = exprs

    def _count_test(self, total: str) -> Fragment:
        if self.op is Op.BETWEEN:
            sql, params = f"{total} BETWEEN %s AND %s", list(self.value)
        else:
            sql, params = f"{total} {_HAVING_SQL[self.op]} %s", [self.value]
        return (f"NOT ({sql})" if self.failing else sql), params

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Fragment:
        pk_sql, pk_params = compiler.compile(self.pk)
        q = connection.ops.quote_name
        ops = connection.ops
        counters, event = q(EventDailyCount._meta.db_table), q(Event._meta.db_table)
        person, name, day, count = q("person_id"), q("name"), q("day"), q("count")
        # Table and column names come from the models' _meta; values go in as parameters.
        # Counters have no app: the (name, day) index reads every app's rows of the name;
        # the outer query keeps this App's people.
        if self.start is None:
            having, having_params = self._count_test(f"SUM(d.{count})")
            people = (
                f"SELECT d.{person} FROM {counters} d WHERE d.{name} = %s "  # noqa: S608
                f"GROUP BY d.{person} HAVING {having}"
            )
            return f"{pk_sql} IN ({people})", [*pk_params, self.name, *having_params]
        first_day = ops.adapt_datefield_value(self.start.astimezone(UTC).date())
        next_midnight = datetime.combine(
            self.start.astimezone(UTC).date() + timedelta(days=1), time.min, tzinfo=UTC
        )
        # The boundary day's counter only says whether the person had events that day; its
        # events inside the window are counted from the event table.
        totals = (
            f"SELECT d.{person} AS person_id, "  # noqa: S608
            f"SUM(CASE WHEN d.{day} > %s THEN d.{count} ELSE 0 END) AS n "
            f"FROM {counters} d WHERE d.{name} = %s AND d.{day} >= %s GROUP BY d.{person}"
        )
        boundary = (
            f"SELECT e.{person} AS person_id, COUNT(*) AS n FROM {event} e "  # noqa: S608
            f"WHERE e.{q('app_id')} = %s AND e.{name} = %s "
            f"AND e.{q('timestamp')} >= %s AND e.{q('timestamp')} < %s GROUP BY e.{person}"
        )
        test, test_params = self._count_test("t.n + COALESCE(b.n, 0)")
        people = (
            f"SELECT t.person_id FROM ({totals}) t "  # noqa: S608
            f"LEFT JOIN ({boundary}) b ON b.person_id = t.person_id WHERE {test}"
        )
        params = [
            first_day,
            self.name,
            first_day,
            self.app_id,
            self.name,
            ops.adapt_datetimefield_value(self.start),
            ops.adapt_datetimefield_value(next_midnight),
            *test_params,
        ]
        return f"{pk_sql} IN ({people})", [*pk_params, *params]


def _aware(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now


def condition_to_q(
    condition: Condition,
    *,
    app: App,
    now: datetime,
    segment_resolver: SegmentResolver | None = None,
    context: ContextPolicy = "refuse",
) -> Q:
    """A `Q` over `Person` selecting the people of `app` that `condition` matches at `now`.

    `Person.objects.filter(condition_to_q(...))` counts or lists them in one query. Segment
    references are inlined through `segment_resolver` (slug → parsed condition, or None when
    there is no such segment; a reference back into the chain is false). Context leaves
    (page URL, locale, device) are refused unless `context="upper_bound"`, which assumes the
    answer that admits more people, so a campaign audience count is an upper bound.
    Pure: builds the query, runs nothing.
    """
    compiler = _Compiler(app_id=app.pk, now=_aware(now), resolver=segment_resolver, context=context)
    return Q(app=app) & compiler.q(condition, positive=True, path=())


def condition_people(
    condition: Condition,
    *,
    app: App,
    now: datetime,
    segment_resolver: SegmentResolver | None = None,
    context: ContextPolicy = "refuse",
) -> QuerySet[Person]:
    """The people of `app` matching `condition` at `now`, as a lazy queryset."""
    return Person.objects.filter(
        condition_to_q(
            condition, app=app, now=now, segment_resolver=segment_resolver, context=context
        )
    )

"""Snowplow tracker-protocol parsing for the collector endpoints.

Turns what a Snowplow tracker sends, the `GET /i` query string or a `POST
/com.snowplowanalytics.snowplow/tp2` `payload_data` body, into `SnowplowEvent` values, and
everything it cannot use into `SnowplowRejected` values that name the field at fault.

This module is pure Python on purpose: the hot ingestion path may bypass the ORM (DESIGN.md,
"Event ingestion"), and a parser without I/O is cheap to fuzz.

Nothing here raises on client input. A tracker cannot be told to fix its payload, and an event
that cannot be used must still reach the bad-event store with its reason, so every failure
becomes a `SnowplowRejected`.

Protocol choices where the Snowplow documentation leaves room:
- Only `e` is required of every event (payload_data also lists `tv` and `p`, which Engage does
  not use, so a hand-written tracker that omits them is still served).
- When both forms of a JSON field are sent (`ue_pr` and `ue_px`, `co` and `cx`), the plain one
  is used.
- Entity and self-describing data must be JSON objects: every real Iglu schema describes an
  object, and Engage's conditions address properties by name.
- An unusable `ttm` falls back to `dtm`; a bad timestamp never rejects an event, because the
  collector time is a fine substitute.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

__all__ = [
    "CONTEXTS_SCHEMAS",
    "MAX_RAW_BODY_CHARS",
    "UNSTRUCT_EVENT_SCHEMA",
    "SnowplowEvent",
    "SnowplowRejected",
    "parse_get",
    "parse_post",
]

_SNOWPLOW_IGLU: Final = "iglu:com.snowplowanalytics.snowplow"
CONTEXTS_SCHEMAS: Final = frozenset(
    {
        f"{_SNOWPLOW_IGLU}/contexts/jsonschema/1-0-0",
        f"{_SNOWPLOW_IGLU}/contexts/jsonschema/1-0-1",
    }
)
UNSTRUCT_EVENT_SCHEMA: Final = f"{_SNOWPLOW_IGLU}/unstruct_event/jsonschema/1-0-0"
# Trackers in the wild send payload_data 1-0-0 to 1-0-4; later additions stay compatible.
_PAYLOAD_DATA_SCHEMA_RE: Final = re.compile(
    r"iglu:com\.snowplowanalytics\.snowplow/payload_data/jsonschema/1-0-[0-9]+"
)
# The pattern Snowplow's own envelope schemas (contexts, unstruct_event) require of a schema URI.
_IGLU_URI_RE: Final = re.compile(
    r"iglu:[a-zA-Z0-9_.-]+/(?P<name>[a-zA-Z0-9_-]+)/[a-zA-Z0-9_-]+/[0-9]+-[0-9]+-[0-9]+"
)
_DECIMAL_RE: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER_RE: Final = re.compile(r"[+-]?[0-9]+")

MAX_RAW_BODY_CHARS: Final = 64 * 1024
# Client-supplied text quoted in a reason is cut short so one bad event cannot bloat the store.
_QUOTE_CHARS: Final = 80


@dataclass(frozen=True, slots=True)
class SnowplowEvent:
    aid: str | None
    user_id: str | None
    anonymous_id: str | None
    name: str
    properties: dict[str, Any]
    contexts: list[dict[str, Any]]
    timestamp: datetime | None
    event_id: str | None
    url: str | None
    locale: str | None
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SnowplowRejected:
    raw: dict[str, Any]
    reason: str
    aid: str | None


ParseResult = SnowplowEvent | SnowplowRejected


def parse_get(
    params: Mapping[str, str], *, cookie_nuid: str | None = None
) -> list[SnowplowEvent | SnowplowRejected]:
    """Parse the one event a `GET /i` request carries in its (already decoded) query string.

    `params` may be a Django `QueryDict`: indexing it gives the last value of a repeated key.
    `cookie_nuid` is the collector's `sp` cookie, the anonymous id of last resort.
    """
    try:
        fields = {key: params[key] for key in params}
        raw = {_raw_key(key): _raw_query_value(value) for key, value in fields.items()}
    except Exception as exc:
        return [_internal_error(raw={}, exc=exc)]
    try:
        return [_parse_event(fields, raw=raw, cookie_nuid=cookie_nuid)]
    except Exception as exc:
        return [_internal_error(raw=raw, exc=exc)]


def parse_post(
    body: bytes, *, cookie_nuid: str | None = None
) -> list[SnowplowEvent | SnowplowRejected]:
    """Parse a tp2 `payload_data` body into one result per event, in the order sent.

    A body that is not a `payload_data` document gives a single rejection holding the body as
    text (truncated to `MAX_RAW_BODY_CHARS`); a malformed event rejects only itself.
    """
    try:
        return _parse_post(body, cookie_nuid=cookie_nuid)
    except Exception as exc:
        return [_internal_error(raw=_raw_body(body), exc=exc)]


class _Invalid(Exception):
    """An event cannot be used; the message is the reason shown to whoever debugs the tracker."""


def _parse_post(body: bytes, *, cookie_nuid: str | None) -> list[ParseResult]:
    def reject_body(reason: str, aid: str | None = None) -> list[ParseResult]:
        return [SnowplowRejected(raw=_raw_body(body), reason=reason, aid=aid)]

    try:
        # utf-8-sig: some HTTP clients prepend a byte-order mark, which JSON forbids.
        text = bytes(body).decode("utf-8-sig")
    except UnicodeDecodeError:
        return reject_body("body: not UTF-8 text")
    try:
        document = _json_loads(text, field="body")
    except _Invalid as exc:
        return reject_body(str(exc))

    if not isinstance(document, dict):
        return reject_body(f"body: expected a payload_data object, got {_json_type(document)}")
    schema = document.get("schema")
    data = document.get("data")
    if not isinstance(schema, str) or not _PAYLOAD_DATA_SCHEMA_RE.fullmatch(schema):
        expected = f"{_SNOWPLOW_IGLU}/payload_data/jsonschema/1-0-*"
        return reject_body(
            f'schema: expected "{expected}", got {_describe(schema)}', aid=_first_aid(data)
        )
    if not isinstance(data, list):
        return reject_body(f"data: expected an array of events, got {_json_type(data)}")

    results: list[ParseResult] = []
    for index, event in enumerate(data):
        if isinstance(event, dict):
            results.append(_parse_event(event, raw=event, cookie_nuid=cookie_nuid))
        else:
            reason = f"data[{index}]: expected an event object, got {_json_type(event)}"
            results.append(SnowplowRejected(raw={"event": event}, reason=reason, aid=None))
    return results


def _parse_event(
    fields: Mapping[Any, Any], *, raw: dict[str, Any], cookie_nuid: str | None
) -> ParseResult:
    try:
        return _build_event(fields, raw=raw, cookie_nuid=cookie_nuid)
    except _Invalid as exc:
        aid = fields.get("aid")
        return SnowplowRejected(raw=raw, reason=str(exc), aid=aid if _is_text(aid) else None)


def _build_event(
    fields: Mapping[Any, Any], *, raw: dict[str, Any], cookie_nuid: str | None
) -> SnowplowEvent:
    event_type = _text(fields, "e")
    if event_type is None:
        raise _Invalid('missing field "e"')
    describe = _EVENT_TYPES.get(event_type)
    if describe is None:
        raise _Invalid(f"e: unknown event type {_quote(event_type)}")
    name, properties = describe(fields)
    return SnowplowEvent(
        aid=_text(fields, "aid"),
        user_id=_text(fields, "uid"),
        anonymous_id=_anonymous_id(fields, cookie_nuid=cookie_nuid),
        name=name,
        properties=properties,
        contexts=_contexts(fields),
        timestamp=_timestamp(fields),
        event_id=_text(fields, "eid"),
        url=_text(fields, "url"),
        locale=_text(fields, "lang"),
        raw=raw,
    )


# --- Event types: each returns (event name, properties) -------------------------------------

_Reader = Callable[[Mapping[Any, Any], str], Any]
# (property name, payload field, reader, required)
_Spec = tuple[tuple[str, str, _Reader, bool], ...]


def _text(fields: Mapping[Any, Any], key: str) -> str | None:
    value = fields.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    # A POST body is JSON, so a tracker may send 42 where the protocol says "42".
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return str(value)
    raise _Invalid(f"{key}: expected a string, got {_json_type(value)}")


def _number(fields: Mapping[Any, Any], key: str) -> float | None:
    value = fields.get(key)
    if value is None or value == "":
        return None
    number = _as_float(value)
    if number is None:
        raise _Invalid(f"{key}: expected a number, got {_describe(value)}")
    return number


def _integer(fields: Mapping[Any, Any], key: str) -> int | None:
    value = fields.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str) and _INTEGER_RE.fullmatch(value.strip()):
        try:
            return int(value)
        except ValueError:  # longer than Python's int-from-text limit
            pass
    number = _as_float(value)
    # Accept 12.0: some trackers compute offsets in floating point.
    if number is not None and number.is_integer():
        return int(number)
    raise _Invalid(f"{key}: expected an integer, got {_describe(value)}")


def _number_or_text(fields: Mapping[Any, Any], key: str) -> float | str | None:
    value = fields.get(key)
    number = _as_float(value) if value is not None else None
    return number if number is not None else _text(fields, key)


_PAGE: Final[_Spec] = (
    ("url", "url", _text, False),
    ("page_title", "page", _text, False),
    ("referrer", "refr", _text, False),
)


def _page_view(fields: Mapping[Any, Any]) -> tuple[str, dict[str, Any]]:
    return "page_view", _read(fields, _PAGE)


def _page_ping(fields: Mapping[Any, Any]) -> tuple[str, dict[str, Any]]:
    offsets: _Spec = (
        ("pp_mix", "pp_mix", _integer, False),
        ("pp_max", "pp_max", _integer, False),
        ("pp_miy", "pp_miy", _integer, False),
        ("pp_may", "pp_may", _integer, False),
    )
    return "page_ping", _read(fields, _PAGE + offsets)


def _structured(fields: Mapping[Any, Any]) -> tuple[str, dict[str, Any]]:
    action = _text(fields, "se_ac")
    if action is None:
        raise _Invalid('missing field "se_ac"')
    spec: _Spec = (
        ("category", "se_ca", _text, False),
        ("label", "se_la", _text, False),
        ("property", "se_pr", _text, False),
        # The protocol says se_va is a number, but a label-like value is still worth keeping.
        ("value", "se_va", _number_or_text, False),
    )
    return action, _read(fields, spec)


def _self_describing(fields: Mapping[Any, Any]) -> tuple[str, dict[str, Any]]:
    found = _json_field(fields, plain="ue_pr", encoded="ue_px")
    if found is None:
        raise _Invalid('missing field "ue_pr" or "ue_px"')
    field, envelope = found
    envelope_schema, event = _self_describing_json(envelope, where=field)
    if envelope_schema != UNSTRUCT_EVENT_SCHEMA:
        raise _Invalid(
            f'{field}: unknown schema {_quote(envelope_schema)}, expected "{UNSTRUCT_EVENT_SCHEMA}"'
        )
    schema, data = _self_describing_json(event, where=f"{field}.data")
    match = _IGLU_URI_RE.fullmatch(schema)
    if match is None:
        raise _Invalid(f"{field}.data.schema: not an Iglu schema URI: {_quote(schema)}")
    if not isinstance(data, dict):
        raise _Invalid(f"{field}.data.data: expected an object, got {_json_type(data)}")
    return match["name"], {**data, "$schema": schema}


def _transaction(fields: Mapping[Any, Any]) -> tuple[str, dict[str, Any]]:
    spec: _Spec = (
        ("order_id", "tr_id", _text, True),
        ("affiliation", "tr_af", _text, False),
        ("total", "tr_tt", _number, True),
        ("tax", "tr_tx", _number, False),
        ("shipping", "tr_sh", _number, False),
        ("city", "tr_ci", _text, False),
        ("state", "tr_st", _text, False),
        ("country", "tr_co", _text, False),
        ("currency", "tr_cu", _text, False),
    )
    return "transaction", _read(fields, spec)


def _transaction_item(fields: Mapping[Any, Any]) -> tuple[str, dict[str, Any]]:
    spec: _Spec = (
        ("order_id", "ti_id", _text, True),
        ("sku", "ti_sk", _text, True),
        # ti_nm is current; ti_na is the older spelling some trackers still send.
        ("name", "ti_nm" if _text(fields, "ti_nm") is not None else "ti_na", _text, False),
        ("category", "ti_ca", _text, False),
        ("price", "ti_pr", _number, True),
        ("quantity", "ti_qu", _integer, True),
        ("currency", "ti_cu", _text, False),
    )
    return "transaction_item", _read(fields, spec)


_EVENT_TYPES: Final[dict[str, Callable[[Mapping[Any, Any]], tuple[str, dict[str, Any]]]]] = {
    "pv": _page_view,
    "pp": _page_ping,
    "se": _structured,
    "ue": _self_describing,
    "tr": _transaction,
    "ti": _transaction_item,
}


def _read(fields: Mapping[Any, Any], spec: _Spec) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for name, key, reader, required in spec:
        value = reader(fields, key)
        if value is not None:
            properties[name] = value
        elif required:
            raise _Invalid(f'missing field "{key}"')
    return properties


# --- Identity, time and contexts ------------------------------------------------------------


def _anonymous_id(fields: Mapping[Any, Any], *, cookie_nuid: str | None) -> str | None:
    # duid is the tracker's first-party id. tnuid is a network id the tracker chose on purpose,
    # so it wins over an nuid parameter; the collector's own cookie is the last resort.
    for key in ("duid", "tnuid", "nuid"):
        value = _text(fields, key)
        if value is not None:
            return value
    return cookie_nuid if _is_text(cookie_nuid) else None


def _timestamp(fields: Mapping[Any, Any]) -> datetime | None:
    # ttm is the true time the application vouches for; dtm is the device clock at creation.
    for key in ("ttm", "dtm"):
        value = fields.get(key)
        millis = _as_float(value) if value is not None else None
        if millis is None or millis <= 0:
            continue
        try:
            return datetime.fromtimestamp(millis / 1000, tz=UTC)
        except (OverflowError, ValueError, OSError):
            continue
    return None


def _contexts(fields: Mapping[Any, Any]) -> list[dict[str, Any]]:
    found = _json_field(fields, plain="co", encoded="cx")
    if found is None:
        return []
    field, envelope = found
    envelope_schema, entities = _self_describing_json(envelope, where=field)
    if envelope_schema not in CONTEXTS_SCHEMAS:
        raise _Invalid(f"{field}: unknown contexts schema {_quote(envelope_schema)}")
    if not isinstance(entities, list):
        raise _Invalid(f"{field}.data: expected an array of entities, got {_json_type(entities)}")
    contexts: list[dict[str, Any]] = []
    for index, entity in enumerate(entities):
        where = f"{field}.data[{index}]"
        schema, data = _self_describing_json(entity, where=where)
        if _IGLU_URI_RE.fullmatch(schema) is None:
            raise _Invalid(f"{where}.schema: not an Iglu schema URI: {_quote(schema)}")
        if not isinstance(data, dict):
            raise _Invalid(f"{where}.data: expected an object, got {_json_type(data)}")
        contexts.append({"schema": schema, "data": data})
    return contexts


# --- JSON and base64 -----------------------------------------------------------------------


def _json_field(fields: Mapping[Any, Any], *, plain: str, encoded: str) -> tuple[str, Any] | None:
    """The decoded JSON of whichever of a plain/base64 field pair is present, with its name."""
    value = fields.get(plain)
    if value is not None and value != "":
        # A POST tracker may embed the JSON document itself rather than its text.
        if isinstance(value, dict):
            return plain, value
        if not isinstance(value, str):
            raise _Invalid(f"{plain}: expected a JSON string, got {_json_type(value)}")
        return plain, _json_loads(value, field=plain)
    value = fields.get(encoded)
    if value is not None and value != "":
        if not isinstance(value, str):
            raise _Invalid(f"{encoded}: expected a base64 string, got {_json_type(value)}")
        return encoded, _json_loads(_base64_text(value, field=encoded), field=encoded)
    return None


def _self_describing_json(value: Any, *, where: str) -> tuple[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(f"{where}: expected a self-describing object, got {_json_type(value)}")
    schema = value.get("schema")
    if not isinstance(schema, str):
        raise _Invalid(f"{where}.schema: expected a string, got {_json_type(schema)}")
    if "data" not in value:
        raise _Invalid(f'{where}: missing field "data"')
    return schema, value["data"]


def _json_loads(text: str, *, field: str) -> Any:
    try:
        # NaN/Infinity are not JSON and PostgreSQL's jsonb refuses them: reject them here.
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise _Invalid(f"{field}: invalid JSON ({exc.msg} at char {exc.pos})") from None
    except ValueError as exc:
        raise _Invalid(f"{field}: invalid JSON ({exc})") from None
    except RecursionError:
        raise _Invalid(f"{field}: invalid JSON (nested too deeply)") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text[:_QUOTE_CHARS]} is out of range")
    return number


def _base64_text(value: str, *, field: str) -> str:
    # Trackers send URL-safe base64 without padding (JavaScript) or with it (Python); some
    # send the standard alphabet, whose unescaped "+" a query-string decoder turns into a space.
    cleaned = value.replace(" ", "+").replace("-", "+").replace("_", "/")
    cleaned = "".join(cleaned.split()).rstrip("=")  # line breaks from MIME-style encoders
    if len(cleaned) % 4 == 1:
        raise _Invalid(f"{field}: invalid base64")
    try:
        decoded = base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _Invalid(f"{field}: invalid base64") from None
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise _Invalid(f"{field}: base64 content is not UTF-8 text") from None


# --- Small helpers -------------------------------------------------------------------------


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            return None
    elif isinstance(value, str) and _DECIMAL_RE.fullmatch(value.strip()):
        number = float(value)
    else:
        return None
    return number if math.isfinite(number) else None


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def _describe(value: Any) -> str:
    return _quote(value) if isinstance(value, str) else _json_type(value)


def _quote(text: str) -> str:
    if len(text) > _QUOTE_CHARS:
        text = text[:_QUOTE_CHARS] + "…"
    return json.dumps(text, ensure_ascii=False)


def _first_aid(data: Any) -> str | None:
    """The app id of the first event in a rejected body, so the rejection finds its App."""
    if isinstance(data, list) and data and isinstance(data[0], dict):
        aid = data[0].get("aid")
        return aid if _is_text(aid) else None
    return None


def _raw_key(key: Any) -> str:
    return key if isinstance(key, str) else repr(key)


def _raw_query_value(value: Any) -> Any:
    # A query string only holds text; anything else came from a caller bug, kept as its repr
    # so the raw payload always stays JSON-serialisable.
    return value if isinstance(value, str) else repr(value)[:MAX_RAW_BODY_CHARS]


def _raw_body(body: Any) -> dict[str, Any]:
    try:
        data = bytes(body)
    except Exception:
        return {"body": repr(body)[:MAX_RAW_BODY_CHARS], "truncated": False}
    # Four bytes per character at most: decoding more than this would only be thrown away.
    text = data[: MAX_RAW_BODY_CHARS * 4].decode("utf-8", errors="replace")
    truncated = len(text) > MAX_RAW_BODY_CHARS or len(data) > MAX_RAW_BODY_CHARS * 4
    return {"body": text[:MAX_RAW_BODY_CHARS], "truncated": truncated}


def _internal_error(*, raw: dict[str, Any], exc: Exception) -> SnowplowRejected:
    # Last line of defence: a parser bug must cost one bad event, never a 500 that makes the
    # tracker retry the same payload forever. The tests assert this branch is never reached.
    reason = f"internal error while parsing ({type(exc).__name__}); please report it"
    return SnowplowRejected(raw=raw, reason=reason, aid=None)

"""Every websocket frame of protocol v1, in one place: one schema per type.

Client frames are frozen dataclasses whose fields carry a `Spec` (what the wire value must be);
`frame_parse` turns raw text into one of them or raises `FrameError` naming the problem and the
field path. Server frames are frozen dataclasses too, with `as_dict()` giving the wire shape.
docs/protocol.md documents the same shapes for client authors; tests/engage/
test_realtime_frames.py checks each one.

Unknown fields in a client frame are ignored, so that a newer client can talk to this server
(fields may be added within a version; a breaking change gets a new `v`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

from django.core.serializers.json import DjangoJSONEncoder

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)
MAX_FRAME_BYTES = 64 * 1024
MAX_DEPTH = 32
MAX_ID_LENGTH = 255
MAX_URL_LENGTH = 4096
MAX_TOKEN_LENGTH = 8192

FrameId = str | int


class FrameError(Exception):
    """A client frame that cannot be used: `code` is stable, `message` names the problem."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        frame_id: FrameId | None = None,
        path: str | None = None,
        supported: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.frame_id = frame_id
        self.path = path
        self.supported = supported


class _Invalid(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


# --- field specs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """What one field must be on the wire; `check` returns the clean value or raises."""

    def check(self, value: Any, path: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Text(Spec):
    max_length: int = MAX_ID_LENGTH
    blank: bool = False

    def check(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise _Invalid(path, "must be a string")
        if not self.blank and not value.strip():
            raise _Invalid(path, "must not be empty")
        if len(value) > self.max_length:
            raise _Invalid(path, f"longer than {self.max_length} characters")
        if "\x00" in value:
            raise _Invalid(path, "must not contain NUL characters")
        return value


@dataclass(frozen=True)
class Choice(Spec):
    choices: tuple[str, ...]

    def check(self, value: Any, path: str) -> str:
        if value not in self.choices:
            raise _Invalid(path, f"must be one of {', '.join(self.choices)}")
        return str(value)


@dataclass(frozen=True)
class Integer(Spec):
    minimum: int = 0
    maximum: int = 2**53

    def check(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(path, "must be an integer")
        if not self.minimum <= value <= self.maximum:
            raise _Invalid(path, f"must be from {self.minimum} to {self.maximum}")
        return value


@dataclass(frozen=True)
class Boolean(Spec):
    def check(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise _Invalid(path, "must be true or false")
        return value


@dataclass(frozen=True)
class Uuid(Spec):
    def check(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise _Invalid(path, "must be a UUID string")
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise _Invalid(path, "must be a UUID string") from None


@dataclass(frozen=True)
class JsonObject(Spec):
    """Any JSON object (attributes, properties, answers), bounded in keys and depth."""

    max_keys: int = 200

    def check(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Invalid(path, "must be an object")
        if len(value) > self.max_keys:
            raise _Invalid(path, f"more than {self.max_keys} keys")
        for key in value:
            if len(key) > MAX_ID_LENGTH:
                raise _Invalid(f"{path}.{key[:20]}…", f"key longer than {MAX_ID_LENGTH}")
        return value


@dataclass(frozen=True)
class Nested(Spec):
    schema: type[Any]

    def check(self, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise _Invalid(path, "must be an object")
        return _build(self.schema, value, f"{path}.")


def _wire(s: Spec) -> dict[str, Spec]:
    """Field metadata carrying the wire spec; a field without a default is required."""
    return {"spec": s}


def _build(schema: type[Any], data: Mapping[str, Any], prefix: str) -> Any:
    values: dict[str, Any] = {}
    for f in fields(schema):
        if f.name == "id" and issubclass(schema, ClientFrame):
            continue  # the frame id is read before the schema (see frame_parse)
        s: Spec | None = f.metadata.get("spec")
        if s is None:
            continue
        path = f"{prefix}{f.name}"
        value = data.get(f.name)
        if value is None:
            if f.default is MISSING and f.default_factory is MISSING:
                raise _Invalid(path, "is required")
            continue
        values[f.name] = s.check(value, path)
    return schema(**values)


# --- client frames ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ClientFrame:
    type: ClassVar[str]
    id: FrameId | None = None


@dataclass(frozen=True, kw_only=True)
class Hello(ClientFrame):
    """First frame of every connection: who this is and where they are."""

    type: ClassVar[str] = "hello"
    v: int = field(metadata=_wire(Integer(minimum=0, maximum=1000)))
    anonymous_id: str = field(metadata=_wire(Text()))
    user_id: str | None = field(default=None, metadata=_wire(Text()))
    user_hash: str | None = field(default=None, metadata=_wire(Text(max_length=128)))
    user_token: str | None = field(default=None, metadata=_wire(Text(max_length=MAX_TOKEN_LENGTH)))
    attributes: dict[str, Any] | None = field(default=None, metadata=_wire(JsonObject()))
    url: str | None = field(default=None, metadata=_wire(Text(max_length=MAX_URL_LENGTH)))
    locale: str | None = field(default=None, metadata=_wire(Text(max_length=35)))
    device: str | None = field(default=None, metadata=_wire(Text(max_length=64)))
    session_start: bool = field(default=False, metadata=_wire(Boolean()))


@dataclass(frozen=True, kw_only=True)
class Identify(ClientFrame):
    """The anonymous visitor is now a known user: link them, then a new snapshot."""

    type: ClassVar[str] = "identify"
    user_id: str = field(metadata=_wire(Text()))
    user_hash: str | None = field(default=None, metadata=_wire(Text(max_length=128)))
    user_token: str | None = field(default=None, metadata=_wire(Text(max_length=MAX_TOKEN_LENGTH)))
    attributes: dict[str, Any] | None = field(default=None, metadata=_wire(JsonObject()))


@dataclass(frozen=True, kw_only=True)
class Page(ClientFrame):
    """A page view (first load or history navigation): `show` frames for page-view campaigns."""

    type: ClassVar[str] = "page"
    url: str = field(metadata=_wire(Text(max_length=MAX_URL_LENGTH)))
    locale: str | None = field(default=None, metadata=_wire(Text(max_length=35)))


@dataclass(frozen=True, kw_only=True)
class Track(ClientFrame):
    """An event, stored like any other door's; `message_id` makes a resend count once."""

    type: ClassVar[str] = "track"
    event: str = field(metadata=_wire(Text()))
    properties: dict[str, Any] | None = field(default=None, metadata=_wire(JsonObject()))
    message_id: str | None = field(default=None, metadata=_wire(Text()))


@dataclass(frozen=True, kw_only=True)
class DeliveryReport(ClientFrame):
    """What the person did with a shown item; repeats count once."""

    type: ClassVar[str] = "delivery"
    delivery_id: str = field(metadata=_wire(Uuid()))
    event: str = field(metadata=_wire(Choice(("shown", "clicked", "dismissed"))))
    button: str | None = field(default=None, metadata=_wire(Text(max_length=200, blank=True)))


@dataclass(frozen=True, kw_only=True)
class Response:
    """A survey response, partial or complete; the same `id` again updates it."""

    id: str = field(metadata=_wire(Uuid()))
    survey_id: int = field(metadata=_wire(Integer(minimum=1)))
    answers: dict[str, Any] = field(metadata=_wire(JsonObject()))
    completed: bool = field(default=False, metadata=_wire(Boolean()))
    delivery_id: str | None = field(default=None, metadata=_wire(Uuid()))
    locale: str | None = field(default=None, metadata=_wire(Text(max_length=35)))


@dataclass(frozen=True, kw_only=True)
class Answer(ClientFrame):
    type: ClassVar[str] = "answer"
    response: Response = field(metadata=_wire(Nested(Response)))


@dataclass(frozen=True, kw_only=True)
class Ping(ClientFrame):
    type: ClassVar[str] = "ping"


@dataclass(frozen=True, kw_only=True)
class Preview(ClientFrame):
    """The token of a preview link (`?engage_preview=…`): the server answers with `show`."""

    type: ClassVar[str] = "preview"
    token: str = field(metadata=_wire(Text(max_length=1024)))


CLIENT_FRAMES: dict[str, type[ClientFrame]] = {
    cls.type: cls for cls in (Hello, Identify, Page, Track, DeliveryReport, Answer, Ping, Preview)
}


def _walk(value: Any, path: str, depth: int) -> None:
    """Refuse what the database cannot store or what nests absurdly deep."""
    if depth > MAX_DEPTH:
        raise _Invalid(path or "frame", f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise _Invalid(path or "frame", "must not contain NUL characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise _Invalid(path or "frame", "keys must not contain NUL characters")
            _walk(item, f"{path}.{key}" if path else key, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, f"{path}[{i}]", depth + 1)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def frame_too_large(text: str) -> bool:
    if len(text) > MAX_FRAME_BYTES:
        return True
    return len(text) * 4 > MAX_FRAME_BYTES and len(text.encode()) > MAX_FRAME_BYTES


def frame_parse(text: str | None) -> ClientFrame:
    """The client frame `text` holds, validated; raises FrameError naming what is wrong.

    Codes: `malformed_frame` (not a JSON object in a text frame), `frame_too_large`,
    `unknown_type`, `unsupported_version` (hello with a `v` this server does not speak),
    `invalid_frame` (a field breaks the schema; `path` names it).
    """
    if text is None:
        raise FrameError("malformed_frame", "Binary frames are not supported; send JSON text.")
    if frame_too_large(text):
        raise FrameError(
            "frame_too_large", f"Frames are limited to {MAX_FRAME_BYTES} bytes of UTF-8."
        )
    try:
        data = json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise FrameError("malformed_frame", f"Not valid JSON: {exc}"[:300]) from None
    if not isinstance(data, dict):
        raise FrameError("malformed_frame", "A frame is a JSON object with a type.")
    frame_id = data.get("id")
    if frame_id is not None and (
        isinstance(frame_id, bool)
        or not isinstance(frame_id, str | int)
        or (isinstance(frame_id, str) and len(frame_id) > 64)
    ):
        raise FrameError("invalid_frame", "id: must be a string (≤ 64) or an integer", path="id")
    kind = data.get("type")
    cls = CLIENT_FRAMES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        known = ", ".join(CLIENT_FRAMES)
        raise FrameError(
            "unknown_type",
            f"type: unknown frame type {json.dumps(kind)}; this server knows {known}",
            frame_id=frame_id,
            path="type",
        )
    if cls is Hello:
        v = data.get("v")
        if isinstance(v, int) and not isinstance(v, bool) and v not in SUPPORTED_VERSIONS:
            raise FrameError(
                "unsupported_version",
                f"Protocol version {v} is not supported; this server speaks "
                f"{', '.join(map(str, SUPPORTED_VERSIONS))}.",
                frame_id=frame_id,
                path="v",
                supported=SUPPORTED_VERSIONS,
            )
    try:
        _walk(data, "", 0)
        frame: ClientFrame = _build(cls, data, "")
    except _Invalid as exc:
        raise FrameError(
            "invalid_frame", f"{exc.path}: {exc.message}", frame_id=frame_id, path=exc.path
        ) from None
    return replace(frame, id=frame_id) if frame_id is not None else frame


# --- server frames ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerFrame:
    type: ClassVar[str]

    def as_dict(self) -> dict[str, Any]:
        body = {k: v for k, v in asdict(self).items() if v is not None}
        return {"type": self.type, **body}


@dataclass(frozen=True)
class Welcome(ServerFrame):
    type: ClassVar[str] = "welcome"
    person: dict[str, str | None]
    heartbeat_seconds: int | float
    v: int = PROTOCOL_VERSION

    def as_dict(self) -> dict[str, Any]:
        # person.user_id is null for an anonymous visitor: keep the key.
        return {
            "type": self.type,
            "v": self.v,
            "person": dict(self.person),
            "heartbeat_seconds": self.heartbeat_seconds,
        }


@dataclass(frozen=True)
class Snapshot(ServerFrame):
    type: ClassVar[str] = "snapshot"
    items: list[dict[str, Any]]


@dataclass(frozen=True)
class Show(ServerFrame):
    type: ClassVar[str] = "show"
    item: dict[str, Any]


@dataclass(frozen=True)
class Revoke(ServerFrame):
    type: ClassVar[str] = "revoke"
    kind: str
    id: int


@dataclass(frozen=True)
class Ack(ServerFrame):
    type: ClassVar[str] = "ack"
    id: FrameId


@dataclass(frozen=True)
class Error(ServerFrame):
    type: ClassVar[str] = "error"
    code: str
    message: str
    id: FrameId | None = None
    path: str | None = None
    supported: list[int] | None = None
    details: Any = None
    # True when sending the same frame again later may succeed (the server failed, not the
    # frame): a client keeps such a frame queued instead of dropping it.
    retryable: bool = False


@dataclass(frozen=True)
class Pong(ServerFrame):
    type: ClassVar[str] = "pong"
    id: FrameId | None = None


SERVER_FRAMES: dict[str, type[ServerFrame]] = {
    cls.type: cls for cls in (Welcome, Snapshot, Show, Revoke, Ack, Error, Pong)
}

# Keys of an item in `snapshot.items` and `show.item` (engage.targeting.Item.as_dict()).
ITEM_KEYS = frozenset(
    {"kind", "id", "delivery_id", "variant", "display", "priority", "delay_seconds", "content"}
)


def frame_error(exc: FrameError) -> Error:
    return Error(
        code=exc.code,
        message=exc.message,
        id=exc.frame_id,
        path=exc.path,
        supported=list(exc.supported) if exc.supported else None,
    )


def frame_encode(frame: ServerFrame) -> str:
    return json.dumps(frame.as_dict(), cls=DjangoJSONEncoder, separators=(",", ":"))

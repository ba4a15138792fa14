"""The widget's websocket door, `/ws/v1/widget?key=pk_…` (protocol v1, docs/protocol.md).

The consumer checks the key and origin, waits for `hello`, joins the person's and the App's
groups, records presence, and hands every client frame to one service in a database thread.
It holds no business rule: what a frame does lives in engage.realtime.services, what reaches
the widget unasked leaves from engage.realtime.push.

Timers are plain `loop.call_later` handles (no task per connection): one for the hello
deadline, then one watching for silence longer than two heartbeats.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connections

from engage import errors, keys, ratelimit
from engage.identity import identity_verify
from engage.models import App
from engage.preview import preview_token_redeem
from engage.realtime import frames, services
from engage.realtime.frames import (
    Ack,
    Answer,
    ClientFrame,
    DeliveryReport,
    Error,
    FrameError,
    Hello,
    Identify,
    Page,
    Ping,
    Pong,
    Preview,
    ServerFrame,
    Show,
    Snapshot,
    Track,
    Welcome,
)
from engage.realtime.presence import TTL_SECONDS, presence
from engage.realtime.push import app_group, layer_gate, person_group
from engage.selectors import app_get_by_public_key, origin_allowed_for_app
from engage.targeting import Item, Moment
from segments.models import Person

logger = logging.getLogger(__name__)

# Close codes (docs/protocol.md). 4401/4403 are fixed by DESIGN.md.
CLOSE_UNAUTHORIZED = 4401  # unknown key, or a missing or wrong user_hash
CLOSE_ORIGIN = 4403  # the page's Origin is not allowed for the App
CLOSE_TIMEOUT = 4408  # no hello in time, or silent for more than two heartbeats
# More than BAD_FRAME_LIMIT bad frames in BAD_FRAME_WINDOW, or connects over the rate limit
# (ENGAGE_RATE_LIMIT_WS_CONNECT).
CLOSE_TOO_MANY_ERRORS = 4429
CLOSE_TRY_AGAIN = 1013  # the database is unavailable while checking the key

BAD_FRAME_LIMIT = 20
BAD_FRAME_WINDOW = 60.0
# channels_redis forgets group members after a day (group_expiry); re-add well before that.
GROUP_READD_SECONDS = 3600.0


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


@functools.cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=int(_setting("ENGAGE_WS_DB_THREADS", 8)), thread_name_prefix="engage-ws-db"
    )


def db_threads_close() -> None:
    """Close the database connections the pool's threads keep (tests, before dropping the
    test database; a process that exits closes them anyway)."""
    if not _executor.cache_info().currsize:
        return
    executor = _executor()
    threads = len(executor._threads)  # a private attribute: one task per live thread
    if not threads:
        return
    barrier = threading.Barrier(threads)

    def close() -> None:
        connections.close_all()
        barrier.wait(timeout=10)  # holds this thread so that each task gets its own

    for future in [executor.submit(close) for _ in range(threads)]:
        future.result(timeout=15)


def db(function: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """Run a service in a database thread of the websocket pool.

    Channels' default (one thread for all database work of the process) makes every hello of
    every connection wait behind the others' round trips to PostgreSQL; a small pool lets
    them overlap. Each thread keeps its own connection (closed when stale, as usual); one
    connection's frames still run one after the other.
    """
    return database_sync_to_async(function, thread_sensitive=False, executor=_executor())


def _connect_admit(key: str | None, client_ip: str) -> tuple[bool, App | None]:
    """Count a connect against the key's and client's rate limit (one counter round trip),
    then find the App of the key: (False, None) when over the limit."""
    if not key or not key.startswith(keys.PUBLIC_PREFIX):
        return True, None
    if not ratelimit.rate_limit_hit(scope="ws_connect", identity=f"{key}:{client_ip}").allowed:
        return False, None
    return True, app_get_by_public_key(key)


class WidgetConsumer(AsyncWebsocketConsumer):
    """One widget connection. State: the App, who the person is, and where they are."""

    app: App | None = None
    person_id: int | None = None
    user_id: str | None = None
    anonymous_id: str = ""
    url: str | None = None
    locale: str | None = None
    device: str | None = None
    closing = False

    # --- lifecycle ----------------------------------------------------------------------------

    async def connect(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.last_seen = self.loop.time()
        # Seconds between client pings; fractions only make sense in tests.
        self.heartbeat = _setting("ENGAGE_WS_HEARTBEAT_SECONDS", 25)
        self.bad_frames: collections.deque[float] = collections.deque()
        self.background: set[asyncio.Future[Any]] = set()
        self.timer: asyncio.TimerHandle | None = None
        self.refreshed_at = 0.0
        self.grouped_at = 0.0
        self.in_app_group = False
        # Accept first, then close with a code: browsers only see codes of accepted sockets.
        await self.accept()
        key = self._query("key")
        try:
            admitted, app = await db(_connect_admit)(key, ratelimit.client_ip(self.scope))
        except (OperationalError, InterfaceError, DatabaseError):
            logger.exception("websocket key lookup failed")
            await self._close(CLOSE_TRY_AGAIN, "database unavailable")
            return
        if not admitted:
            await self._close(CLOSE_TOO_MANY_ERRORS, "rate limited")
            return
        if app is None:
            await self._close(CLOSE_UNAUTHORIZED, "unknown key")
            return
        if not origin_allowed_for_app(app, self._header("origin")):
            await self._close(CLOSE_ORIGIN, "origin not allowed")
            return
        self.app = app
        self.timer = self.loop.call_later(
            _setting("ENGAGE_WS_HELLO_TIMEOUT_SECONDS", 10), self._hello_deadline
        )

    async def disconnect(self, code: int) -> None:
        self.closing = True
        if self.timer is not None:
            self.timer.cancel()
        await self._leave()

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Unlike AsyncConsumer.dispatch, no close_old_connections hop per message: pings and
        # pushes touch no database, and database_sync_to_async closes stale connections itself.
        # An unknown message type is logged, not fatal to the connection.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            logger.warning("widget consumer got unknown message type %r", message.get("type"))
            return
        await handler(message)

    # --- client frames ------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing or self.app is None:
            return
        self.last_seen = self.loop.time()
        try:
            frame = frames.frame_parse(text_data)
        except FrameError as exc:
            await self._bad_frame(frames.frame_error(exc))
            return
        if self.person_id is None and not isinstance(frame, Hello | Ping):
            await self._bad_frame(
                Error(
                    code="hello_required",
                    message=f"Send hello before {frame.type}.",
                    id=frame.id,
                )
            )
            return
        handler = self._handlers[type(frame)]
        try:
            await handler(self, frame)
        except errors.IdentityVerificationFailed as exc:
            # The error frame names the cause (token_expired, bad_signature, …) before the close.
            await self._send(Error(code=exc.code, message=exc.message, id=frame.id))
            await self._close(CLOSE_UNAUTHORIZED, "identity verification failed")
            return
        except errors.EngageError as exc:
            await self._send(
                Error(
                    code=exc.code,
                    message=exc.message,
                    id=frame.id,
                    details=exc.details,
                    retryable=exc.status >= 500 or exc.status == 429,
                )
            )
            return
        except (OperationalError, InterfaceError):
            logger.exception("database unavailable for a %s frame", frame.type)
            await self._send(
                Error(
                    code="service_unavailable",
                    message="The database is unavailable; send the frame again shortly.",
                    id=frame.id,
                    retryable=True,
                )
            )
            return
        except Exception:
            logger.exception("widget %s frame failed", frame.type)
            await self._send(
                Error(
                    code="internal_error",
                    message="The server failed; retry.",
                    id=frame.id,
                    retryable=True,
                )
            )
            return
        if frame.id is not None and not isinstance(frame, Ping):
            await self._send(Ack(id=frame.id))
        await self._refresh()

    async def _on_hello(self, frame: ClientFrame) -> None:
        assert isinstance(frame, Hello)  # noqa: S101 - by the handler table
        app = self._app()
        trusted = await self._verify(frame.user_id, frame.user_hash, frame.user_token)
        person: Person = await db(services.session_open)(
            app=app,
            user_id=frame.user_id,
            anonymous_id=frame.anonymous_id,
            attributes={**(frame.attributes or {}), **(trusted or {})} or None,
        )
        self.user_id = frame.user_id
        self.anonymous_id = frame.anonymous_id
        self.url = frame.url
        self.locale = frame.locale
        self.device = frame.device
        if self.timer is not None:
            self.timer.cancel()
        await self._join(person.pk)
        self._watch()
        await self._send(
            Welcome(
                person={"user_id": person.user_id, "anonymous_id": frame.anonymous_id},
                heartbeat_seconds=int(self.heartbeat)
                if self.heartbeat == int(self.heartbeat)
                else self.heartbeat,
            )
        )
        moment = None
        if frame.url or frame.session_start:
            moment = Moment(
                url=frame.url,
                locale=frame.locale,
                device=frame.device,
                session_start=frame.session_start,
            )
        items: list[Item] = await db(services.snapshot_items)(
            app=app, person=person, anonymous_id=self.anonymous_id, moment=moment
        )
        await self._send(Snapshot(items=[i.as_dict() for i in items]))

    async def _on_identify(self, frame: ClientFrame) -> None:
        assert isinstance(frame, Identify)  # noqa: S101
        app = self._app()
        trusted = await self._verify(frame.user_id, frame.user_hash, frame.user_token)
        person: Person = await db(services.session_identify)(
            app=app,
            user_id=frame.user_id,
            anonymous_id=self.anonymous_id,
            attributes={**(frame.attributes or {}), **(trusted or {})} or None,
        )
        self.user_id = frame.user_id
        await self._join(person.pk)
        items: list[Item] = await db(services.snapshot_items)(
            app=app, person=person, anonymous_id=self.anonymous_id, moment=None
        )
        await self._send(Snapshot(items=[i.as_dict() for i in items]))

    async def _on_page(self, frame: ClientFrame) -> None:
        assert isinstance(frame, Page)  # noqa: S101
        self.url = frame.url
        self.locale = frame.locale or self.locale
        acted: services.Acted = await db(services.page_view)(
            app=self._app(),
            user_id=self.user_id,
            anonymous_id=self.anonymous_id,
            moment=Moment(url=frame.url, locale=self.locale, device=self.device),
        )
        await self._join(acted.person.pk)
        for item in acted.items:
            await self._send(Show(item=item.as_dict()))

    async def _on_track(self, frame: ClientFrame) -> None:
        assert isinstance(frame, Track)  # noqa: S101
        await db(services.widget_track)(
            app=self._app(),
            user_id=self.user_id,
            anonymous_id=self.anonymous_id,
            event=frame.event,
            properties=frame.properties,
            message_id=frame.message_id,
        )

    async def _on_delivery(self, frame: ClientFrame) -> None:
        assert isinstance(frame, DeliveryReport)  # noqa: S101
        person: Person = await db(services.widget_delivery)(
            app=self._app(),
            user_id=self.user_id,
            anonymous_id=self.anonymous_id,
            delivery_id=frame.delivery_id,
            event=frame.event,
            button=frame.button,
        )
        await self._join(person.pk)

    async def _on_answer(self, frame: ClientFrame) -> None:
        assert isinstance(frame, Answer)  # noqa: S101
        response = frame.response
        await db(services.answer_submit)(
            app=self._app(),
            user_id=self.user_id,
            anonymous_id=self.anonymous_id,
            response_id=response.id,
            survey_id=response.survey_id,
            delivery_id=response.delivery_id,
            answers=response.answers,
            completed=response.completed,
            locale=response.locale or self.locale,
        )

    async def _on_ping(self, frame: ClientFrame) -> None:
        await self._send(Pong(id=frame.id))

    async def _on_preview(self, frame: ClientFrame) -> None:
        assert isinstance(frame, Preview)  # noqa: S101
        item: Item = await db(preview_token_redeem)(
            app=self._app(),
            token=frame.token,
            user_id=self.user_id,
            anonymous_id=self.anonymous_id,
            locale=self.locale,
        )
        await self._send(Show(item=item.as_dict()))

    _handlers: dict[type[ClientFrame], Callable[[WidgetConsumer, ClientFrame], Awaitable[None]]] = {
        Hello: _on_hello,
        Identify: _on_identify,
        Page: _on_page,
        Track: _on_track,
        DeliveryReport: _on_delivery,
        Answer: _on_answer,
        Ping: _on_ping,
        Preview: _on_preview,
    }

    # --- pushes from the channel layer --------------------------------------------------------

    async def realtime_show(self, message: dict[str, Any]) -> None:
        if self.person_id is None or self.closing:
            return
        item = message["item"]
        if self._foreign_locale(item):
            try:
                item = await db(services.item_localize)(
                    app=self._app(), item=item, locale=self.locale
                )
            except Exception:  # the default locale's content is better than nothing
                logger.exception("localizing a pushed item failed")
        await self._send(Show(item=item))

    async def realtime_revoke(self, message: dict[str, Any]) -> None:
        if self.person_id is not None and not self.closing:
            await self._send(frames.Revoke(kind=message["kind"], id=message["id"]))

    # --- helpers ------------------------------------------------------------------------------

    def _foreign_locale(self, item: dict[str, Any]) -> bool:
        """Whether a pushed item was rendered in another language than this connection's."""
        content = item.get("content")
        rendered = content.get("locale") if isinstance(content, dict) else None
        if not self.locale or not rendered:
            return False
        wanted = self.locale.lower()
        return rendered.lower() not in (wanted, wanted.split("-")[0])

    def _app(self) -> App:
        assert self.app is not None  # noqa: S101 - receive() drops frames before the key check
        return self.app

    def _query(self, name: str) -> str | None:
        values = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get(name)
        return values[0] if values else None

    def _header(self, name: str) -> str | None:
        wanted = name.lower().encode()
        for key, value in self.scope.get("headers", []):
            if key.lower() == wanted:
                return str(value.decode("latin-1"))
        return None

    async def _verify(
        self, user_id: str | None, user_hash: str | None, user_token: str | None
    ) -> dict[str, Any] | None:
        """Check the identity proof (docs/identity.md); the token's trusted attributes, if any.

        Raises IdentityVerificationFailed when refused (enforce mode); monitor mode counts the
        failure and lets the connection go on.
        """
        app = self._app()
        if not user_id or not app.identity_verification:
            return None
        proof = await db(identity_verify)(
            app=app, user_id=user_id, user_hash=user_hash, user_token=user_token, door="websocket"
        )
        return proof.attributes if proof.verified else None

    async def _send(self, frame: ServerFrame) -> None:
        if not self.closing:
            await self.send(text_data=frames.frame_encode(frame))

    async def _close(self, code: int, reason: str) -> None:
        if not self.closing:
            self.closing = True
            await self.close(code=code, reason=reason)

    async def _bad_frame(self, error: Error) -> None:
        now = self.loop.time()
        self.bad_frames.append(now)
        while self.bad_frames and self.bad_frames[0] < now - BAD_FRAME_WINDOW:
            self.bad_frames.popleft()
        if len(self.bad_frames) > BAD_FRAME_LIMIT:
            await self._close(CLOSE_TOO_MANY_ERRORS, "too many bad frames")
            return
        await self._send(error)

    async def _join(self, person_id: int) -> None:
        """Be in the person's group (moving from another person's) and in the App's."""
        app_id = self._app().pk
        if person_id == self.person_id:
            return
        await self._leave_person()
        self.person_id = person_id
        await self._group_add(person_group(app_id, person_id))
        if not self.in_app_group:
            await self._group_add(app_group(app_id))
            self.in_app_group = True
        self.grouped_at = time.monotonic()
        await self._presence_add()

    async def _presence_add(self) -> None:
        if self.app is None or self.person_id is None:
            return
        try:
            await presence().connection_add(
                app_id=self.app.pk, person_id=self.person_id, channel=self.channel_name
            )
            self.refreshed_at = time.monotonic()
        except Exception:
            logger.exception("presence update failed")

    async def _refresh(self) -> None:
        """Keep presence (and, daily, group membership) alive on a long-lived connection."""
        if self.person_id is None or self.closing:
            return
        now = time.monotonic()
        if now - self.grouped_at > GROUP_READD_SECONDS:
            self.grouped_at = now
            app_id = self._app().pk
            await self._group_add(person_group(app_id, self.person_id))
            await self._group_add(app_group(app_id))
        # Refresh only when waiting for the next ping could let the entry expire: every other
        # ping with the defaults (25 s pings, 65 s entries).
        if now - self.refreshed_at + self.heartbeat >= TTL_SECONDS - 10:
            await self._presence_add()

    async def _leave_person(self) -> None:
        if self.app is None or self.person_id is None:
            return
        app_id, person_id = self.app.pk, self.person_id
        self.person_id = None
        try:
            await self._group_discard(person_group(app_id, person_id))
            await presence().connection_remove(
                app_id=app_id, person_id=person_id, channel=self.channel_name
            )
        except Exception:
            logger.exception("leaving the person's group failed")

    async def _leave(self) -> None:
        await self._leave_person()
        if self.app is not None and self.in_app_group:
            self.in_app_group = False
            try:
                await self._group_discard(app_group(self.app.pk))
            except Exception:
                logger.exception("leaving the App's group failed")

    async def _group_add(self, group: str) -> None:
        async with layer_gate():
            try:
                await self.channel_layer.group_add(group, self.channel_name)
            except Exception:
                # After Redis restarts, each pooled connection fails its first command and is
                # dropped: one more try gets a fresh one (a Redis still down fails it again).
                logger.warning("channel layer group_add failed once; trying again")
                await self.channel_layer.group_add(group, self.channel_name)

    async def _group_discard(self, group: str) -> None:
        async with layer_gate():
            await self.channel_layer.group_discard(group, self.channel_name)

    def _later(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def _hello_deadline(self) -> None:
        if self.person_id is None and not self.closing:
            self._later(self._close(CLOSE_TIMEOUT, "no hello"))

    def _watch(self) -> None:
        """Close a connection silent for more than two heartbeats; re-arm otherwise."""
        if self.closing:
            return
        limit = 2.0 * self.heartbeat
        idle = self.loop.time() - self.last_seen
        if idle > limit:
            self._later(self._close(CLOSE_TIMEOUT, "no heartbeat"))
            return
        self.timer = self.loop.call_later(limit - idle + 0.05, self._watch)


class EchoConsumer(AsyncWebsocketConsumer):
    """Echoes text frames: the benchmark's baseline (routed only in DEBUG or ENGAGE_BENCH_ECHO)."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is not None:
            await self.send(text_data=text_data)

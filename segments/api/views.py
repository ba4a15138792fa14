"""HTTP doors of the segments app: collector, events, identify, people and data debugging."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status as http
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engage import errors
from engage.api.authentication import (
    AnyAppKey,
    AppCredential,
    AppKeyAuthentication,
    SecretKeyRequired,
    public_origin_check,
    request_app,
)
from engage.api.identity import user_hash_check
from engage.ratelimit import client_ip
from engage.selectors import origin_allowed_for_any_app
from segments.api.serializers import (
    DebugEventsPageSerializer,
    EventInSerializer,
    EventsAcceptedSerializer,
    EventsBatchSerializer,
    IdentifySerializer,
    PersonSerializer,
)
from segments.collector import (
    COLLECTOR_METHODS,
    CollectorAnswer,
    collector_admit,
    collector_cors_headers,
    collector_query_from_bytes,
    collector_receive,
    collector_too_large,
)
from segments.models import EventSource
from segments.selectors import (
    debug_cursor_decode,
    debug_cursor_encode,
    debug_events_list,
    person_get_for_app,
    person_profile,
)
from segments.services import EventInput, bad_event_record, events_ingest, person_identify


@csrf_exempt
def collector(request: HttpRequest) -> HttpResponse:
    """`GET /i`, `POST /com.snowplowanalytics.snowplow/tp2` and their preflights."""
    origin = request.headers.get("Origin")
    if request.method == "OPTIONS":
        response = HttpResponse(status=200)
    elif request.method in ("GET", "POST") and (
        throttled := collector_admit(client_ip=client_ip(request.META))
    ):
        response = _collector_response(throttled)
    elif request.method in ("GET", "POST"):
        try:
            body = request.body if request.method == "POST" else b""
        except RequestDataTooBig:
            # Over Django's own limit: answer as the collector does (413 JSON), not HTML.
            answer = collector_too_large()
        else:
            answer = collector_receive(
                method=request.method,
                query=collector_query_from_bytes(request.META.get("QUERY_STRING", "")),
                body=body,
                origin=origin,
                cookie_nuid=request.COOKIES.get("sp"),
            )
        response = _collector_response(answer)
    else:
        response = HttpResponse(status=405)
        response["Allow"] = COLLECTOR_METHODS
    if origin and origin_allowed_for_any_app(origin):
        for name, value in collector_cors_headers(origin):
            response[name] = value
    return response


def _collector_response(answer: CollectorAnswer) -> HttpResponse:
    response = HttpResponse(answer.body, status=answer.status, content_type=answer.content_type)
    for name, value in answer.headers:
        response[name] = value
    return response


class EngageAPIView(APIView):
    authentication_classes = [AppKeyAuthentication]
    permission_classes = [AnyAppKey]


class ManagementAPIView(APIView):
    authentication_classes = [AppKeyAuthentication]
    permission_classes = [SecretKeyRequired]


def _validated(serializer_class: Any, data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class EventsView(EngageAPIView):
    @extend_schema(
        request=EventsBatchSerializer,
        responses={200: EventsAcceptedSerializer},
        summary="Send a batch of events",
        description=(
            "Stores each valid event once (`message_id` makes retries idempotent). Invalid "
            "events are kept as bad events and named in a 400 whose `details.accepted` says "
            "how many of the batch were stored anyway."
        ),
    )
    def post(self, request: Request) -> Response:
        credential: AppCredential = request.auth  # type: ignore[assignment]
        public_origin_check(request, credential)
        app = credential.app
        received_at = timezone.now()
        batch = _validated(EventsBatchSerializer, request.data)
        inputs: list[EventInput] = []
        rejected: list[dict[str, Any]] = []
        for index, item in enumerate(batch["events"]):
            serializer = EventInSerializer(data=item)
            if not serializer.is_valid():
                field, message = next(iter(serializer.errors.items()))
                text = message[0] if isinstance(message, list) else str(message)
                rejected.append({"index": index, "field": field, "message": str(text)})
                bad_event_record(
                    app=app,
                    source=EventSource.API,
                    reason=f"events[{index}].{field}: {text}",
                    raw=item if isinstance(item, dict) else {"event": item},
                    received_at=received_at,
                )
                continue
            data = serializer.validated_data
            if credential.kind == "public" and data.get("user_id"):
                user_hash_check(
                    app=app,
                    user_id=data["user_id"],
                    user_hash=data.get("user_hash") or request.headers.get("X-Engage-User-Hash"),
                    user_token=data.get("user_token") or request.headers.get("X-Engage-User-Token"),
                    door="events",
                )
            inputs.append(
                EventInput(
                    name=data["name"],
                    user_id=data.get("user_id") or None,
                    anonymous_id=data.get("anonymous_id") or None,
                    properties=data.get("properties") or {},
                    timestamp=data.get("timestamp"),
                    dedup_id=data.get("message_id") or None,
                    raw=item,
                )
            )
        result = events_ingest(
            app=app, events=inputs, source=EventSource.API, received_at=received_at
        )
        accepted = {"accepted": len(result.stored), "duplicates": result.duplicates}
        if rejected:
            first = rejected[0]
            raise errors.InvalidInput(
                f"events[{first['index']}].{first['field']}: {first['message']}",
                code="events_rejected",
                details={**accepted, "rejected": rejected},
            )
        return Response(accepted, status=http.HTTP_200_OK)


class IdentifyView(EngageAPIView):
    @extend_schema(request=IdentifySerializer, responses={200: PersonSerializer})
    def post(self, request: Request) -> Response:
        credential: AppCredential = request.auth  # type: ignore[assignment]
        public_origin_check(request, credential)
        data = _validated(IdentifySerializer, request.data)
        trusted = None
        if credential.kind == "public":
            # A valid identity token's attributes win over those the client sends.
            trusted = user_hash_check(
                app=credential.app,
                user_id=data["user_id"],
                user_hash=data.get("user_hash") or request.headers.get("X-Engage-User-Hash"),
                user_token=data.get("user_token") or request.headers.get("X-Engage-User-Token"),
                door="identify",
            )
        person = person_identify(
            app=credential.app,
            user_id=data["user_id"],
            anonymous_id=data.get("anonymous_id") or None,
            attributes={**(data.get("attributes") or {}), **(trusted or {})},
        )
        return Response(PersonSerializer(person_profile(person=person)).data)


class PersonView(ManagementAPIView):
    @extend_schema(responses={200: PersonSerializer})
    def get(self, request: Request, user_id: str) -> Response:
        person = person_get_for_app(app=request_app(request), user_id=user_id)
        return Response(PersonSerializer(person_profile(person=person)).data)


class DebugEventsView(ManagementAPIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=["good", "bad"], required=False),
            OpenApiParameter("limit", int, required=False),
            OpenApiParameter("cursor", str, required=False),
        ],
        responses={200: DebugEventsPageSerializer},
    )
    def get(self, request: Request) -> Response:
        status = request.query_params.get("status") or None
        if status not in (None, "good", "bad"):
            raise errors.InvalidInput('status: must be "good" or "bad"')
        try:
            limit = int(request.query_params.get("limit", "50"))
        except ValueError as exc:
            raise errors.InvalidInput("limit: must be a whole number") from exc
        if not 1 <= limit <= 500:
            raise errors.InvalidInput("limit: must be between 1 and 500")
        raw_cursor = request.query_params.get("cursor")
        cursor = debug_cursor_decode(raw_cursor) if raw_cursor else None
        rows = debug_events_list(
            app_id=request_app(request).pk, status=status, limit=limit, cursor=cursor
        )
        next_url = None
        if len(rows) == limit:
            params = request.query_params.copy()
            params["cursor"] = debug_cursor_encode(rows[-1].sort_key)
            next_url = request.build_absolute_uri(f"{request.path}?{params.urlencode()}")
        return Response(
            DebugEventsPageSerializer(
                {"results": [r.as_dict() for r in rows], "next": next_url}
            ).data
        )

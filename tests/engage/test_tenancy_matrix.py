"""Tenancy matrix: every endpoint that names an object, called with another App's keys.

The cases come from the URL resolver, not from a list kept by hand: every API route with a
path parameter, with every method its view answers. A new endpoint is covered as soon as it is
routed; one whose parameter the matrix cannot fill fails `test_every_endpoint_with_an_id_is_in
_the_matrix` until it is added to `OBJECT_OF`. Each case checks that:

- another App's secret key gets 404 (the object does not exist for it), never the data;
- another App's public key gets 403 (secret key required) or 404;
- the owner's own key does not get 404 (so the id is real and the case cannot pass vacuously).

Endpoints that take ids in the body (push, responses) are listed in BODY_CASES.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from rest_framework.test import APIClient

from engage.campaigns import campaign_create, campaign_publish
from engage.dashboard_tiles import dashboard_create
from engage.insights import insight_create
from engage.kpis import kpi_create
from engage.models import Delivery
from segments.services import EventInput, events_ingest, person_identify, segment_create
from tests.conftest import AppKeys
from tests.surveys.conftest import QUESTIONS

ORIGIN = "https://host.example"
CONTENT = {"en": {"title": "Hi", "body": "Try it", "buttons": []}}
METHODS = ("get", "post", "put", "patch", "delete")


@dataclass
class World:
    """Objects of App A, the owner; App B is the stranger."""

    owner: AppKeys
    stranger: AppKeys
    user_id: str
    segment_slug: str
    message_id: int
    survey_id: int
    delivery_id: str
    insight_id: int
    kpi_id: int
    dashboard_id: int


def _routes(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


def _methods(pattern: URLPattern) -> list[str]:
    actions = getattr(pattern.callback, "actions", None)
    if actions:
        return sorted(m for m in actions if m in METHODS)
    view_class = getattr(pattern.callback, "view_class", None) or getattr(
        pattern.callback, "cls", None
    )
    return [m for m in METHODS if view_class is not None and hasattr(view_class, m)]


def api_routes_with_ids() -> list[tuple[str, list[str], list[str]]]:
    """(URL name, path parameters, methods) of every API route that names an object."""
    found = []
    for route, pattern in _routes(get_resolver().url_patterns):
        params = list(pattern.pattern.regex.groupindex)
        if route.lstrip("^").startswith("api/") and params:
            found.append((str(pattern.name), params, _methods(pattern)))
    return found


# Which object of the owner fills a path parameter, by the route's name (router basename).
OBJECT_OF: dict[tuple[str, str], Callable[[World], Any]] = {
    ("person", "user_id"): lambda w: w.user_id,
    ("segment", "slug"): lambda w: w.segment_slug,
    ("message", "pk"): lambda w: w.message_id,
    ("survey", "pk"): lambda w: w.survey_id,
    ("delivery", "delivery_id"): lambda w: w.delivery_id,
    ("insight", "pk"): lambda w: w.insight_id,
    ("kpi", "pk"): lambda w: w.kpi_id,
    ("dashboard", "pk"): lambda w: w.dashboard_id,
}


def _filler(name: str, param: str) -> Callable[[World], Any] | None:
    return OBJECT_OF.get((name.split("-")[0], param))


def _body(world: World, name: str, method: str) -> dict[str, Any] | None:
    if method in ("get", "delete"):
        return None
    if name == "delivery-events":
        return {"type": "shown", "user_id": world.user_id}
    if name.startswith("segment"):
        return {"name": "Renamed", "condition": {"attribute": "plan", "op": "eq", "value": "x"}}
    return {"name": "Renamed"}


def _call(client: APIClient, method: str, url: str, body: Any) -> Any:
    return getattr(client, method)(url, body, format="json", HTTP_ORIGIN=ORIGIN)


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def world(app_keys: AppKeys, other_app_keys: AppKeys) -> World:
    app = app_keys.app
    person = person_identify(app=app, user_id="u-owner", attributes={"plan": "pro"})
    events_ingest(app=app, events=[EventInput(name="clicked", user_id="u-owner")])
    # The stranger has a person with the same user id: ids are per App.
    person_identify(app=other_app_keys.app, user_id="u-twin")
    segment = segment_create(
        app=app, slug="power-users", name="Power users", condition={"event": "clicked"}
    )
    message = campaign_create(
        kind="message", app=app, data={"name": "M", "kind": "modal", "content": CONTENT}
    )
    survey = campaign_create(kind="survey", app=app, data={"name": "S", "questions": QUESTIONS})
    campaign_publish(campaign=survey)
    delivery = Delivery.objects.create(
        app=app, person=person, kind="message", campaign_id=message.pk, decided_at=timezone.now()
    )
    insight = insight_create(
        app=app, name="Clicks", kind="trend", definition={"event": "clicked", "last_days": 7}
    )
    kpi = kpi_create(app=app, name="Clicks", kind="event", definition={"event": "clicked"})
    dashboard = dashboard_create(app=app, name="Overview")
    return World(
        owner=app_keys,
        stranger=other_app_keys,
        user_id=person.user_id or "",
        segment_slug=segment.slug,
        message_id=message.pk,
        survey_id=survey.pk,
        delivery_id=str(delivery.pk),
        insight_id=insight.pk,
        kpi_id=kpi.pk,
        dashboard_id=dashboard.pk,
    )


ROUTES = api_routes_with_ids()
CASES = [
    pytest.param(name, params, method, id=f"{name}:{method}")
    for name, params, methods in ROUTES
    for method in methods
]


def test_the_matrix_walks_the_routes():
    # The resolver walk found the known endpoints (a walk that finds nothing proves nothing).
    names = {name for name, _, _ in ROUTES}
    assert {"person", "segment-detail", "message-publish", "survey-summary"} <= names
    assert len(CASES) >= 20


@pytest.mark.parametrize(("name", "params", "methods"), ROUTES, ids=[r[0] for r in ROUTES])
def test_every_endpoint_with_an_id_is_in_the_matrix(name, params, methods):
    missing = [p for p in params if _filler(name, p) is None]
    assert not missing, f"{name}: add its {missing} to OBJECT_OF in the tenancy matrix"
    assert methods, f"{name}: no HTTP method found on its view"


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "params", "method"), CASES)
def test_another_apps_keys_never_reach_an_object(world, name, params, method):
    kwargs = {p: filler(world) for p in params if (filler := _filler(name, p))}
    url = reverse(name, kwargs=kwargs)
    body = _body(world, name, method)

    foreign_secret = _call(_client(world.stranger.secret_key), method, url, body)
    assert foreign_secret.status_code == 404, (url, foreign_secret.content)
    assert foreign_secret.json()["error"]["code"] in ("not_found", "unknown_delivery")

    foreign_public = _call(_client(world.stranger.public_key), method, url, body)
    assert foreign_public.status_code in (403, 404), (url, foreign_public.content)

    # The same request with the owner's key finds the object: the case is not vacuous.
    own = _call(_client(world.owner.secret_key), method, url, body)
    assert own.status_code != 404, (url, own.content)
    assert own.status_code < 500, (url, own.content)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/segments",
        "/api/v1/messages",
        "/api/v1/surveys",
        "/api/v1/insights",
        "/api/v1/kpis",
        "/api/v1/dashboards",
    ],
)
def test_lists_show_only_the_callers_objects(world, path):
    theirs = _client(world.stranger.secret_key).get(path)
    mine = _client(world.owner.secret_key).get(path)
    assert theirs.status_code == mine.status_code == 200
    assert theirs.json()["results"] == []
    assert len(mine.json()["results"]) == 1


@pytest.mark.django_db
def test_debug_events_show_only_the_callers_events(world):
    theirs = _client(world.stranger.secret_key).get("/api/v1/debug/events")
    mine = _client(world.owner.secret_key).get("/api/v1/debug/events")
    assert theirs.json()["results"] == []
    assert [r["event"]["name"] for r in mine.json()["results"]] == ["clicked"]


def _push(world: World) -> tuple[str, dict[str, Any]]:
    return "/api/v1/targeting/push", {
        "user_id": world.user_id,
        "campaign": {"kind": "message", "id": world.message_id},
    }


def _response(world: World) -> tuple[str, dict[str, Any]]:
    return "/api/v1/responses", {
        "id": str(uuid.uuid4()),
        "survey_id": world.survey_id,
        "user_id": world.user_id,
        "answers": {"recommend": 9},
        "completed": False,
    }


BODY_CASES = {"targeting-push": (_push, "secret"), "responses": (_response, "public")}


@pytest.mark.django_db
@pytest.mark.parametrize("case", sorted(BODY_CASES))
def test_ids_in_bodies_of_another_app_are_not_found(world, case):
    make, kind = BODY_CASES[case]
    path, body = make(world)
    stranger = world.stranger.secret_key if kind == "secret" else world.stranger.public_key
    owner = world.owner.secret_key if kind == "secret" else world.owner.public_key

    foreign = _client(stranger).post(path, body, format="json", HTTP_ORIGIN=ORIGIN)
    assert foreign.status_code == 404, foreign.content

    own = _client(owner).post(path, body, format="json", HTTP_ORIGIN=ORIGIN)
    assert own.status_code != 404, own.content
    assert own.status_code < 500, own.content

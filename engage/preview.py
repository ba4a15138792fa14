"""Previews: a campaign of any status shown now to the App's own team, as a test.

- `campaign_preview`: the admin shows a campaign now on every open widget of a test user,
  whatever its status, schedule, audience, caps or quiet rules; it is rendered as it would
  be for real (content per locale, the widget's display rules).
- Preview links: `preview_link_create` makes a one-time link to the host app carrying
  `?engage_preview=TOKEN`; the widget sends the token and `preview_token_redeem` shows the
  campaign to that browser, signed in or not. Tokens are signed, expire after
  PREVIEW_TOKEN_TTL, are stored (their nonce's hash) and work once.

Preview deliveries are `is_test=True`: results, webhooks, caps and quiet periods ignore them.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.core import signing
from django.db import transaction
from django.utils import timezone

from engage import errors
from engage.campaigns import campaign_get_for_app, campaign_kind_get
from engage.models import App, Campaign, CampaignStatus, Delivery, PreviewToken, TestUser
from engage.realtime.presence import presence
from engage.realtime.push import group_messages_send, person_group, show_message
from engage.selectors import origin_allowed_for_app
from engage.targeting import CompiledCampaign, Item, compile_one
from segments.models import Person
from segments.services import person_resolve

PREVIEW_TOKEN_TTL = timedelta(minutes=30)
PREVIEW_PARAM = "engage_preview"
_SALT = "engage.preview"


@dataclass(frozen=True)
class Previewed:
    item: Item
    delivery: Delivery
    connections: int


def _forced(kind: str, campaign: Campaign) -> CompiledCampaign:
    """The campaign with every targeting rule lifted: only its rendering is kept."""
    return replace(
        compile_one(kind, campaign),
        status=CampaignStatus.LIVE,
        starts_at=None,
        ends_at=None,
        audience=None,
        audience_condition=None,
        sample_bp=10_000,
        holdout_bp=0,
        max_impressions=None,
        recontact_days=0,
        quiet_hours=False,
    )


def _test_delivery(
    *, app: App, person: Person, kind: str, campaign: Campaign, locale: str | None, via: str
) -> tuple[Item, Delivery]:
    compiled = _forced(kind, campaign)
    variant = compiled.variants[0][0]
    now = timezone.now()
    delivery = Delivery.objects.create(
        app=app,
        person=person,
        kind=kind,
        campaign_id=campaign.pk,
        variant=variant,
        is_test=True,
        decided_at=now,
        context={"preview": via},
    )
    item = Item(
        kind=kind,
        id=campaign.pk,
        delivery_id=str(delivery.pk),
        variant=variant,
        display=compiled.display,
        priority=compiled.priority,
        delay_seconds=0,
        content=campaign_kind_get(kind).content(campaign, locale or app.default_locale, variant),
    )
    return item, delivery


@transaction.atomic
def campaign_preview(
    *, app: App, kind: str, campaign_id: Any, user_id: str, locale: str | None = None
) -> Previewed:
    """Show a campaign now on the open widgets of one of the App's test users.

    Before: `user_id` is a TestUser of `app` (InvalidInput `not_a_test_user` otherwise); the
    campaign is the App's (any status). After: the person exists; a test delivery
    (`is_test=True`) is recorded; after commit a `show` frame goes to the person's open
    widgets. `connections` is how many there were (0: nothing is shown until the next
    preview, since test deliveries never wait in a snapshot).
    """
    if not TestUser.objects.filter(app=app, user_id=user_id).exists():
        raise errors.InvalidInput(
            f'user_id: "{user_id}" is not a test user of this App', code="not_a_test_user"
        )
    campaign = campaign_get_for_app(app=app, kind=kind, campaign_id=campaign_id)
    person = person_resolve(app=app, user_id=user_id, anonymous_id=None, create=True)
    assert person is not None  # noqa: S101 - a user id is always given
    item, delivery = _test_delivery(
        app=app, person=person, kind=kind, campaign=campaign, locale=locale, via="test_user"
    )
    connections = presence().connections_count(app_id=app.pk, person_id=person.pk)
    messages = [(person_group(app.pk, person.pk), show_message(item))]
    transaction.on_commit(lambda: group_messages_send(messages))
    return Previewed(item=item, delivery=delivery, connections=connections)


def _nonce_hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


@transaction.atomic
def preview_link_create(
    *,
    app: App,
    kind: str,
    campaign_id: Any,
    url: str,
    ttl: timedelta = PREVIEW_TOKEN_TTL,
    now: datetime | None = None,
) -> str:
    """A one-time link to `url` (a page of the host app) that previews the campaign there.

    Before: `url` is http(s) on one of the App's allowed origins (InvalidInput `url`
    otherwise). After: a PreviewToken is stored (the nonce's hash, expiry). Returns the URL
    with `engage_preview=TOKEN` added to its query.
    """
    campaign = campaign_get_for_app(app=app, kind=kind, campaign_id=campaign_id)
    parts = urlsplit(url.strip())
    origin = f"{parts.scheme}://{parts.netloc}"
    if parts.scheme not in ("http", "https") or not origin_allowed_for_app(app, origin):
        raise errors.InvalidInput(
            "url: must be a page on one of this App's allowed origins", code="invalid_url"
        )
    now = now or timezone.now()
    nonce = secrets.token_urlsafe(18)
    PreviewToken.objects.create(
        app=app,
        kind=kind,
        campaign_id=campaign.pk,
        nonce_hash=_nonce_hash(nonce),
        created_at=now,
        expires_at=now + ttl,
    )
    token = signing.dumps({"a": app.pk, "n": nonce}, salt=_SALT, compress=False)
    joiner = "&" if parts.query else "?"
    base = url.strip().split("#", 1)[0]
    fragment = f"#{parts.fragment}" if parts.fragment else ""
    return f"{base}{joiner}{PREVIEW_PARAM}={token}{fragment}"


def _refused(code: str, message: str) -> errors.InvalidInput:
    return errors.InvalidInput(f"token: {message}", code=code)


@transaction.atomic
def preview_token_redeem(
    *,
    app: App,
    token: str,
    user_id: str | None,
    anonymous_id: str | None,
    locale: str | None = None,
    now: datetime | None = None,
) -> Item:
    """Show the campaign of a preview link to the browser that sends its token, once.

    Codes when refused (400): `preview_token_invalid` (bad signature, another App's, unknown),
    `preview_token_expired`, `preview_token_used`. After: the token is used; the browser's
    person exists and has a test delivery of the campaign; returns the item to show.
    """
    now = now or timezone.now()
    try:
        data = signing.loads(token, salt=_SALT, max_age=PREVIEW_TOKEN_TTL)
    except signing.SignatureExpired:
        raise _refused("preview_token_expired", "this preview link has expired") from None
    except signing.BadSignature:
        raise _refused("preview_token_invalid", "not a preview token of this server") from None
    if not isinstance(data, dict) or data.get("a") != app.pk or not isinstance(data.get("n"), str):
        raise _refused("preview_token_invalid", "not a preview token of this App")
    row = (
        PreviewToken.objects.select_for_update()
        .filter(app=app, nonce_hash=_nonce_hash(data["n"]))
        .first()
    )
    if row is None:
        raise _refused("preview_token_invalid", "unknown preview token")
    if row.used_at is not None:
        raise _refused("preview_token_used", "this preview link was already used")
    if row.expires_at <= now:
        raise _refused("preview_token_expired", "this preview link has expired")
    campaign = campaign_get_for_app(app=app, kind=row.kind, campaign_id=row.campaign_id)
    person = person_resolve(app=app, user_id=user_id, anonymous_id=anonymous_id, create=True)
    if person is None:
        raise errors.InvalidInput("anonymous_id: give a user_id or an anonymous_id")
    item, delivery = _test_delivery(
        app=app, person=person, kind=row.kind, campaign=campaign, locale=locale, via="link"
    )
    row.used_at = now
    row.delivery = delivery
    row.save(update_fields=["used_at", "delivery"])
    return item

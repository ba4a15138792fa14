"""The "Incoming events" admin page: good and bad events as received, filterable."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from engage.admin_debug import PAGE_SIZE
from segments.services import EventInput, bad_event_record, events_ingest

pytestmark = pytest.mark.django_db

PAGE = "/admin/segments/incoming-events/"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # admin_client logs in a user whose password is hashed; the default hasher is slow on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def stream(app_keys, other_app_keys):
    """One of each, a second apart, oldest first."""
    start = timezone.now() - timedelta(minutes=5)
    at = [start + timedelta(seconds=i) for i in range(5)]
    events_ingest(
        app=app_keys.app,
        events=[EventInput(name="page_view", user_id="u1", raw={"e": "pv", "marker": "pv-raw"})],
        source="collector",
        received_at=at[0],
    )
    events_ingest(
        app=app_keys.app,
        events=[EventInput(name="export_clicked", user_id="u1", properties={"format": "csv"})],
        source="api",
        received_at=at[1],
    )
    bad_event_record(
        app=app_keys.app,
        source="collector",
        reason="ue_px: not valid base64",
        raw={"ue_px": "%%%"},
        received_at=at[2],
    )
    bad_event_record(
        app=None,
        source="collector",
        reason='aid: no App has the Snowplow app id "ghost"',
        raw={"aid": "ghost"},
        received_at=at[3],
    )
    events_ingest(
        app=other_app_keys.app,
        events=[EventInput(name="signed_up", user_id="x1")],
        source="widget",
        received_at=at[4],
    )


def shown(client: Client, query: str = "") -> list[tuple[str, str]]:
    response = client.get(PAGE + query)
    assert response.status_code == 200
    return [(row["status"], row["name"] or row["reason"]) for row in response.context["rows"]]


def test_lists_good_and_bad_newest_first_with_raw_payloads(admin_client, stream):
    response = admin_client.get(PAGE)
    assert response.status_code == 200
    assert shown(admin_client) == [
        ("good", "signed_up"),
        ("bad", 'aid: no App has the Snowplow app id "ghost"'),
        ("bad", "ue_px: not valid base64"),
        ("good", "export_clicked"),
        ("good", "page_view"),
    ]
    html = response.content.decode()
    assert "pv-raw" in html  # the raw payload, in an expandable row
    assert "<details>" in html
    assert "format: csv" in html  # a glimpse of the properties
    assert "no App" in html


def test_filters_by_status_source_app_and_reason(admin_client, stream, app_keys, other_app_keys):
    assert [s for s, _ in shown(admin_client, "?status=bad")] == ["bad", "bad"]
    assert shown(admin_client, "?status=good&source=api") == [("good", "export_clicked")]
    assert shown(admin_client, "?source=widget") == [("good", "signed_up")]
    assert [n for _, n in shown(admin_client, f"?app={app_keys.app.pk}")] == [
        "ue_px: not valid base64",
        "export_clicked",
        "page_view",
    ]
    assert shown(admin_client, f"?app={other_app_keys.app.pk}") == [("good", "signed_up")]
    assert shown(admin_client, "?app=none") == [
        ("bad", 'aid: no App has the Snowplow app id "ghost"')
    ]
    # A reason filter keeps bad events only; it ignores case.
    assert shown(admin_client, "?reason=BASE64") == [("bad", "ue_px: not valid base64")]
    assert shown(admin_client, "?reason=nothing-like-this") == []


def test_unknown_filter_values_are_ignored(admin_client, stream):
    assert len(shown(admin_client, "?status=ugly&source=fax&app=abc")) == 5
    response = admin_client.get(PAGE + "?cursor=not-a-cursor")
    assert response.status_code == 200
    assert "no longer valid" in response.content.decode()


def test_older_pages_follow_the_cursor_with_the_filters(admin_client, app_keys):
    start = timezone.now() - timedelta(hours=1)
    for i in range(PAGE_SIZE + 5):
        bad_event_record(
            app=app_keys.app,
            source="api",
            reason=f"name: bad #{i}",
            raw={},
            received_at=start + timedelta(seconds=i),
        )
    first = admin_client.get(PAGE + "?status=bad")
    assert len(first.context["rows"]) == PAGE_SIZE
    older = first.context["older_url"]
    assert "status=bad" in older
    assert "cursor=" in older
    second = admin_client.get(older)
    reasons = [row["reason"] for row in second.context["rows"]]
    assert reasons == [f"name: bad #{i}" for i in range(4, -1, -1)]
    assert second.context["older_url"] == ""


def test_linked_from_the_admin_index(admin_client):
    for url in ("/admin/", "/admin/segments/"):
        html = admin_client.get(url).content.decode()
        assert f'href="{PAGE}"' in html
        assert "Incoming events" in html


def test_staff_with_permission_only(stream):
    user_model = get_user_model()
    member = user_model.objects.create_user("visitor", "v@example.com", "pw-12345678")
    client = Client()
    client.force_login(member)
    response = client.get(PAGE)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]

    staff = user_model.objects.create_user("sasha", "s@example.com", "pw-12345678", is_staff=True)
    client.force_login(staff)
    assert client.get(PAGE).status_code == 403
    assert f'href="{PAGE}"' not in client.get("/admin/").content.decode()

    staff.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="segments", codename__in=["view_event", "view_badevent"]
        )
    )
    staff = user_model.objects.get(pk=staff.pk)  # permissions are cached per user object
    client.force_login(staff)
    assert client.get(PAGE).status_code == 200

"""Segment authoring in the admin: readable conditions, path-named errors, live count."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from segments.models import Segment
from segments.services import person_identify, segment_create

pytestmark = pytest.mark.django_db

ADD = "/admin/segments/segment/add/"
PREVIEW = "/admin/segments/segment/preview/"
BAD_CONDITION = {
    "all": [
        {"attribute": "plan", "op": "eq", "value": "pro"},
        {"event": "export_clicked", "count": {"op": "gtee", "value": 3}, "within_days": 30},
    ]
}


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # admin_client logs in a user whose password is hashed; the default hasher is slow on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def form(app_id: int, **overrides: Any) -> dict[str, Any]:
    condition = overrides.pop("condition", {"attribute": "plan", "op": "eq", "value": "pro"})
    return {
        "app": app_id,
        "name": "Pro users",
        "slug": "pro-users",
        "description": "",
        "condition": condition if isinstance(condition, str) else json.dumps(condition),
        **overrides,
    }


def preview(client: Client, **body: Any) -> Any:
    return client.post(PREVIEW, json.dumps(body), content_type="application/json")


def test_pages_render_with_the_condition_in_words(admin_client, app_keys):
    segment = segment_create(
        app=app_keys.app,
        slug="power-users",
        name="Power users",
        condition={
            "all": [
                {"attribute": "plan", "op": "eq", "value": "pro"},
                {
                    "event": "export_clicked",
                    "count": {"op": "gte", "value": 3},
                    "within_days": 30,
                },
            ]
        },
    )
    words = "plan is pro and did export_clicked at least 3 times in the last 30 days"

    listing = admin_client.get("/admin/segments/segment/")
    assert listing.status_code == 200
    assert words in listing.content.decode()
    assert "power-users" in listing.content.decode()

    change = admin_client.get(f"/admin/segments/segment/{segment.pk}/change/")
    assert change.status_code == 200
    html = change.content.decode()
    assert words in html
    assert 'data-preview-url="/admin/segments/segment/preview/"' in html
    assert admin_client.get(ADD).status_code == 200


def test_invalid_condition_is_refused_at_its_path_and_nothing_is_saved(admin_client, app_keys):
    response = admin_client.post(ADD, form(app_keys.app.pk, condition=BAD_CONDITION))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["condition"]
    assert 'all[1].count.op: unknown operator "gtee"' in errors
    html = response.content.decode()
    # The tree marks the wrong node, names the key inside it and suggests the operator.
    assert 'class="engage-tree-node engage-tree-bad" data-path="all[1]"' in html
    assert 'data-path="all[0]"' in html
    assert "plan is pro" in html  # the valid sibling is still shown in words
    assert "Did you mean &quot;gte&quot;?" in html
    assert not Segment.objects.exists()


def test_every_error_is_listed_and_bad_json_names_the_line(admin_client, app_keys):
    both = {"any": [{"attribute": "plan", "op": "eqq"}, {"segment": "Not a slug!"}]}
    response = admin_client.post(ADD, form(app_keys.app.pk, condition=both))
    errors = response.context["adminform"].form.errors["condition"]
    assert any(e.startswith("any[0].op:") for e in errors)
    assert any(e.startswith("any[1].segment:") for e in errors)

    missing_comma = '{\n  "attribute": "plan",\n  "op": "eq"\n  "value": "pro"\n}'
    response = admin_client.post(ADD, form(app_keys.app.pk, condition=missing_comma))
    [error] = response.context["adminform"].form.errors["condition"]
    assert error == "not valid JSON: Expecting ',' delimiter (line 4, column 3)"
    assert not Segment.objects.exists()


def test_unknown_segment_and_cycles_are_refused_by_the_service(admin_client, app_keys):
    response = admin_client.post(ADD, form(app_keys.app.pk, condition={"segment": "nope"}))
    assert 'segment: no segment "nope" in this App' in " ".join(
        response.context["adminform"].form.errors["condition"]
    )
    assert not Segment.objects.exists()

    first = segment_create(
        app=app_keys.app, slug="a", name="A", condition={"attribute": "x", "op": "is_set"}
    )
    segment_create(app=app_keys.app, slug="b", name="B", condition={"segment": "a"})
    response = admin_client.post(
        f"/admin/segments/segment/{first.pk}/change/",
        {"name": "A", "description": "", "condition": json.dumps({"segment": "b"})},
    )
    assert response.status_code == 200
    [error] = response.context["adminform"].form.errors["condition"]
    assert "cycle" in error
    first.refresh_from_db()
    assert first.condition == {"attribute": "x", "op": "is_set"}


def test_a_valid_segment_is_created_and_edited_through_the_services(admin_client, app_keys):
    response = admin_client.post(ADD, form(app_keys.app.pk))
    assert response.status_code == 302
    segment = Segment.objects.get()
    assert (segment.slug, segment.app_id) == ("pro-users", app_keys.app.pk)
    assert segment.condition == {"attribute": "plan", "op": "eq", "value": "pro"}

    changed = {"attribute": "plan", "op": "in", "value": ["pro", "team"]}
    response = admin_client.post(
        f"/admin/segments/segment/{segment.pk}/change/",
        {"name": "Paying", "description": "", "condition": json.dumps(changed)},
    )
    assert response.status_code == 302
    segment.refresh_from_db()
    assert (segment.name, segment.condition) == ("Paying", changed)


def test_duplicate_slug_is_a_form_error(admin_client, app_keys):
    segment_create(app=app_keys.app, slug="pro-users", name="P", condition={"all": []})
    response = admin_client.post(ADD, form(app_keys.app.pk))
    assert response.status_code == 200
    assert "already exists" in " ".join(response.context["adminform"].form.errors["slug"])
    assert Segment.objects.count() == 1


def test_preview_counts_the_matching_people_of_the_app(admin_client, app_keys, other_app_keys):
    for user_id, plan in (("u1", "pro"), ("u2", "pro"), ("u3", "free")):
        person_identify(app=app_keys.app, user_id=user_id, attributes={"plan": plan})
    person_identify(app=other_app_keys.app, user_id="x1", attributes={"plan": "pro"})

    response = preview(
        admin_client,
        app=app_keys.app.pk,
        condition='{"attribute": "plan", "op": "eq", "value": "pro"}',
    )

    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is True
    assert body["count"] == 2
    assert sorted(body["sample"]) == ["u1", "u2"]
    assert body["description"] == "plan is pro"
    assert body["errors"] == []


def test_preview_of_an_invalid_condition_names_paths_and_counts_nothing(admin_client, app_keys):
    body = preview(admin_client, app=app_keys.app.pk, condition=json.dumps(BAD_CONDITION)).json()
    assert body["valid"] is False
    assert body["count"] is None
    assert body["errors"] == [{"path": "all[1].count.op", "message": 'unknown operator "gtee"'}]
    assert 'data-path="all[1]"' in body["tree_html"]
    assert "engage-tree-bad" in body["tree_html"]


def test_preview_of_a_saved_segment_uses_its_app(admin_client, app_keys):
    person_identify(app=app_keys.app, user_id="u1", attributes={"plan": "pro"})
    segment = segment_create(app=app_keys.app, slug="s", name="S", condition={"all": []})
    body = preview(
        admin_client, object_id=segment.pk, condition='{"attribute": "plan", "op": "is_set"}'
    ).json()
    assert body["count"] == 1


def test_preview_escapes_what_it_echoes(admin_client, app_keys):
    body = preview(
        admin_client,
        app=app_keys.app.pk,
        condition=json.dumps({"attribute": "<script>alert(1)</script>", "op": "eqq"}),
    ).json()
    assert "<script>" not in body["tree_html"]
    assert "&lt;script&gt;" in body["tree_html"]


def test_preview_is_a_csrf_protected_post_for_staff_only(app_keys):
    user_model = get_user_model()
    staff = user_model.objects.create_superuser("boss", "boss@example.com", "pw-12345678")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(staff)
    assert preview(strict, app=app_keys.app.pk, condition="{}").status_code == 403
    assert strict.get(PREVIEW).status_code == 405

    member = user_model.objects.create_user("parker", "p@example.com", "pw-12345678")
    client = Client()
    client.force_login(member)
    response = preview(client, app=app_keys.app.pk, condition="{}")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    assert client.get("/admin/segments/segment/").status_code == 302


def test_a_segment_in_use_is_not_deleted(admin_client, app_keys):
    used = segment_create(app=app_keys.app, slug="a", name="A", condition={"all": []})
    segment_create(app=app_keys.app, slug="b", name="B", condition={"segment": "a"})
    response = admin_client.post(
        f"/admin/segments/segment/{used.pk}/delete/", {"post": "yes"}, follow=True
    )
    assert Segment.objects.filter(pk=used.pk).exists()
    notes = [str(m) for m in response.context["messages"]]
    assert any('still used by segment "b"' in note for note in notes)

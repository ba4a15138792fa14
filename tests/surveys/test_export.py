"""Responses as paginated JSON, as a streamed CSV, and open-text answers with search."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.http import StreamingHttpResponse

from surveys.models import Response, Survey
from surveys.selectors import survey_responses_csv
from surveys.services import response_submit
from tests.factories import PersonFactory
from tests.surveys.conftest import submit

pytestmark = pytest.mark.django_db

TRICKY = [
    'comma, "quote" and semicolon;',
    "two\nlines\r\nand a CRLF",
    "unicode: Ünïcödé — 日本語 — emoji 👍🏽",
    '=HYPERLINK("http://evil.example","click")',
    "+SUM(1,2)",
    "-2+3",
    "@cmd",
    "\tTAB first",
]


def csv_rows(response: StreamingHttpResponse) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response.streaming
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_csv_round_trips_special_characters_and_defuses_formulas(
    public_client, secret_client, survey
):
    for i, text in enumerate(TRICKY):
        done = submit(
            public_client,
            survey["id"],
            {
                "recommend": i,
                "why": text,
                "satisfaction": 5,
                "plan": {"other": text} if i % 2 else "pro",
                "features": ["export", "alerts"] if i % 2 else ["reports", {"other": text}],
                "again": bool(i % 2),
            },
            user_id=f"=user{i}" if i == 0 else f"user {i}, ok",
            completed=True,
        )
        assert done.status_code == 200, done.content
    response = secret_client.get(f"/api/v1/surveys/{survey['id']}/responses", {"format": "csv"})
    assert response["Content-Disposition"] == (
        f'attachment; filename="survey-{survey["id"]}-responses.csv"'
    )
    rows = csv_rows(response)
    assert list(rows[0]) == [
        "response_id", "created_at", "updated_at", "completed", "user_id", "locale", "variant",
        "delivery_id", "recommend", "why", "satisfaction", "plan", "features", "stars", "again",
        "call",
    ]  # fmt: skip
    assert len(rows) == len(TRICKY)
    by_score = {int(row["recommend"]): row for row in rows}
    for i, text in enumerate(TRICKY):
        row = by_score[i]
        # OWASP: a cell starting with = + - @ tab or CR gets a leading apostrophe.
        shown = "'" + text if text[0] in "=+-@\t\r" else text
        assert row["why"] == shown
        assert row["plan"] == (shown if i % 2 else "Pro, yearly")
        assert row["features"] == ("Export; Alerts" if i % 2 else f"Reports; {shown}")
        assert row["again"] == ("yes" if i % 2 else "no")
        assert row["completed"] == "true"
        assert row["stars"] == ""
        assert uuid.UUID(row["response_id"])
        assert row["created_at"].endswith("Z")
    assert by_score[0]["user_id"] == "'=user0"
    assert by_score[1]["user_id"] == "user 1, ok"


def test_csv_streams_every_row_in_order_with_filters(app_keys, secret_client, survey):
    start = datetime(2024, 3, 1, tzinfo=UTC)
    total = 12_345  # more than two chunks of the writer and of the database cursor
    person = PersonFactory(app=app_keys.app)
    Response.objects.bulk_create(
        Response(
            id=uuid.uuid4(),
            app=app_keys.app,
            survey_id=survey["id"],
            person=person,
            answers={"recommend": i % 11},
            locale="de" if i % 3 == 0 else "en",
            created_at=start + timedelta(seconds=(i * 7919) % total),
        )
        for i in range(total)
    )
    rows = csv_rows(secret_client.get(f"/api/v1/surveys/{survey['id']}/responses?format=csv"))
    assert len(rows) == total
    assert [r["created_at"] for r in rows] == sorted(r["created_at"] for r in rows)
    german = csv_rows(
        secret_client.get(f"/api/v1/surveys/{survey['id']}/responses?format=csv&locale=de")
    )
    assert len(german) == len(range(0, total, 3))
    assert {r["locale"] for r in german} == {"de"}
    # Chunks come from a generator: nothing is built in memory up front.
    export = survey_responses_csv(survey=Survey.objects.select_related("app").get())
    assert str(next(export.rows)[8]) == "0"
    export.rows.close()  # type: ignore[attr-defined]


def test_csv_with_a_bom_for_excel_and_errors_in_json(secret_client, survey):
    response = secret_client.get(f"/api/v1/surveys/{survey['id']}/responses?format=csv&bom=1")
    assert b"".join(response.streaming_content).startswith("\ufeffresponse_id,".encode())
    bad = secret_client.get(f"/api/v1/surveys/{survey['id']}/responses?format=csv&from=nope")
    assert bad.status_code == 400
    assert bad["Content-Type"] == "application/json"
    assert bad.json()["error"]["message"].startswith("from:")


@pytest.mark.django_db(transaction=True)
async def test_csv_streams_under_asgi(app_keys, survey, monkeypatch, recwarn):
    """Through the real ASGI application (as Daphne runs it): the export is an async
    iterator pulled chunk by chunk, never a sync iterator Django would read to the end into
    memory before sending the first byte (it warns when it has to)."""
    from asgiref.sync import sync_to_async
    from asgiref.testing import ApplicationCommunicator
    from django.core.asgi import get_asgi_application
    from django.db import connection, connections

    # Connections the request's thread opens close when it ends (the default keeps them).
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    for i in range(3):
        await sync_to_async(response_submit)(
            app=app_keys.app,
            survey_id=survey["id"],
            response_id=uuid.uuid4(),
            user_id=f"u{i}",
            anonymous_id=None,
            delivery_id=None,
            answers={"why": f"answer {i}, with a comma"},
            completed=False,
        )
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": f"/api/v1/surveys/{survey['id']}/responses",
        "raw_path": f"/api/v1/surveys/{survey['id']}/responses".encode(),
        "query_string": b"format=csv",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", f"Bearer {app_keys.secret_key}".encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    communicator = ApplicationCommunicator(get_asgi_application(), scope)
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(timeout=10)
    assert start["status"] == 200
    assert dict(start["headers"])[b"Content-Type"] == b"text/csv; charset=utf-8"
    parts = []
    while True:
        message = await communicator.receive_output(timeout=10)
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    await communicator.wait()
    assert len([p for p in parts if p]) >= 2  # the header, then the rows: sent as they come
    rows = list(csv.DictReader(io.StringIO(b"".join(parts).decode(), newline="")))
    assert sorted(r["why"] for r in rows) == [f"answer {i}, with a comma" for i in range(3)]
    assert not [w for w in recwarn if "StreamingHttpResponse must consume" in str(w.message)]
    await sync_to_async(connections.close_all)()  # this test's own worker thread


def test_json_pages_with_next_links(public_client, secret_client, survey):
    ids = {submit(public_client, survey["id"], {"recommend": i}).json()["id"] for i in range(5)}
    seen: list[str] = []
    url: str | None = f"/api/v1/surveys/{survey['id']}/responses?limit=2"
    pages = 0
    while url:
        page = secret_client.get(url).json()
        assert len(page["results"]) <= 2
        seen += [r["id"] for r in page["results"]]
        url = page["next"]
        pages += 1
    assert pages == 3
    assert sorted(seen) == sorted(ids)
    first = secret_client.get(f"/api/v1/surveys/{survey['id']}/responses?format=json").json()
    result = first["results"][0]
    assert set(result) == {
        "id", "survey_id", "delivery_id", "user_id", "variant", "locale", "answers",
        "completed", "created_at", "updated_at", "completed_at",
    }  # fmt: skip
    assert result["user_id"] == "u1"


def test_text_answers_search(public_client, secret_client, survey):
    submit(public_client, survey["id"], {"recommend": 3, "why": "The PRICE is too high"})
    submit(public_client, survey["id"], {"recommend": 4, "why": "Slow reports"})
    submit(public_client, survey["id"], {"plan": {"other": "Priceless plan"}})
    url = f"/api/v1/surveys/{survey['id']}/text-answers"
    found = secret_client.get(url, {"search": "price"}).json()["results"]
    assert sorted((a["question_id"], a["choice"], a["text"]) for a in found) == [
        ("plan", "other", "Priceless plan"),
        ("why", None, "The PRICE is too high"),
    ]
    only_why = secret_client.get(url, {"search": "price", "question": "why"}).json()["results"]
    assert [a["text"] for a in only_why] == ["The PRICE is too high"]

"""Answers stored while no worker runs are scored once a real Celery worker starts.

The test process sends tasks to Redis (REDIS_URL) instead of running them eagerly; a
`celery -A engage worker` subprocess on the same test database then scores them. Skipped
without REDIS_URL unless ENGAGE_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from engage.celery import app as celery_app
from surveys.models import Answer, SentimentDaily
from tests import live
from tests.surveys.conftest import submit

pytestmark = [pytest.mark.live, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

TEXTS = {
    "u1": "Terrible update. The export is slow and the app crashes all the time.",
    "u2": "I love the new reports, they are fast and beautiful!",
    "u3": "Das ist wirklich schlecht, die App stürzt ständig ab.",
}
WAIT_SECONDS = 60


@pytest.fixture
def broker(redis_url: str) -> Iterator[str]:
    """Send tasks to Redis from this process for the test, then back to eager mode.

    Celery keeps broker connection pools made with the settings of their time (eager mode
    also takes a producer from them): the test gets pools of its own, which it closes, and
    the earlier ones are put back untouched.
    """
    saved = {key: celery_app.conf[key] for key in ("broker_url", "task_always_eager")}
    pools = celery_app._pool, celery_app.amqp._producer_pool
    celery_app._pool = celery_app.amqp._producer_pool = None
    celery_app.conf.update(broker_url=redis_url, task_always_eager=False)
    try:
        yield redis_url
    finally:
        if celery_app.amqp._producer_pool is not None:
            celery_app.amqp._producer_pool.force_close_all()
        if celery_app._pool is not None:
            celery_app._pool.force_close_all()
        celery_app._pool, celery_app.amqp._producer_pool = pools
        celery_app.conf.update(**saved)


@pytest.fixture
def start_worker(broker: str) -> Iterator[object]:
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "DATABASE_URL": live.test_database_url(),
            "CELERY_BROKER_URL": broker,
            "REDIS_URL": broker,
            "DJANGO_SETTINGS_MODULE": "engage.settings",
            "PYTHONUNBUFFERED": "1",
        }
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "engage",
                "worker",
                "--pool=solo",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "--loglevel=WARNING",
            ],
            cwd=live.ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def test_answers_stored_without_a_worker_are_scored_once_one_starts(
    public_client, survey, start_worker
):
    for user, text in TEXTS.items():
        response = submit(
            public_client, survey["id"], {"recommend": 3, "why": text}, user_id=user, locale="en"
        )
        assert response.status_code == 200, response.content
    time.sleep(1.0)  # no worker: the tasks wait in Redis, nothing is scored
    assert Answer.objects.filter(text__isnull=False, sentiment_label__isnull=True).count() == 3

    worker = start_worker()  # type: ignore[operator]
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if not Answer.objects.filter(text__isnull=False, sentiment_label__isnull=True).exists():
            break
        if worker.poll() is not None:
            pytest.fail(f"the worker exited: {worker.stderr.read().decode()[-2000:]}")
        time.sleep(0.25)
    else:
        pytest.fail(f"answers not scored within {WAIT_SECONDS} s")

    labels = dict(
        Answer.objects.filter(text__isnull=False).values_list("person__user_id", "sentiment_label")
    )
    assert labels == {"u1": "negative", "u2": "positive", "u3": "unsupported"}
    (daily,) = SentimentDaily.objects.filter(survey_id=survey["id"])
    assert (daily.positive, daily.negative, daily.unsupported) == (1, 1, 1)

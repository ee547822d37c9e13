"""Redis restarted while work is queued: what a user was told is queued is still done, once."""

import socket
import subprocess
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
import redis
from django.contrib.auth import get_user_model
from django.utils import timezone

from core import services as core_services
from core.models import TaskRun
from finance import services
from finance.models import ArticleSentiment
from tests.faults.conftest import finished
from tests.workers import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def private_redis():
    """A redis-server of this test's own on a free port, keeping nothing on disk, like the production one here.

    Yields (url, restart): restart() kills it with SIGKILL and starts it again on the same port.
    """
    port = free_port()
    state = {}

    def start():
        state["proc"] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = redis.Redis(port=port)
        wait_for(lambda: _pings(client), timeout=20, what="the private redis-server")

    def restart():
        state["proc"].kill()
        state["proc"].wait()
        start()

    start()
    try:
        yield f"redis://127.0.0.1:{port}/0", restart
    finally:
        state["proc"].kill()
        state["proc"].wait()


def _pings(client) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


@contextmanager
def publishing_to(url: str):
    """Point this process's Celery app (what services send with) at `url` for the block."""
    from core.celery import app

    def use(urls):
        app.conf.broker_url, app.conf.broker_write_url = urls
        app._pool = None  # the pools are made again for the new address on the next send
        app.amqp._producer_pool = None

    previous = app.conf.broker_url, app.conf.broker_write_url
    use((url, url))
    try:
        yield
    finally:
        use(previous)


def test_scoring_queued_before_a_redis_restart_is_done_once(source, companies, active_sentiment, start_worker):
    pusher = get_user_model().objects.create_user(username="pusher")
    with private_redis() as (url, restart), publishing_to(url):
        run = services.articles_push(source_name="Wire API", user=pusher, articles=[
            {"title": f"Norvale Bank update {i}", "body": "Profit rose.", "published_at": timezone.now().isoformat()}
            for i in range(4)
        ])
        assert run.accepted == 4  # the API answered: the articles are in, scoring is queued
        scoring = TaskRun.objects.get(task="finance.score_articles")
        client = redis.Redis.from_url(url)
        assert client.llen("ml") == 1

        restart()
        assert client.llen("ml") == 0  # Redis kept nothing: the message is gone
        assert scoring.state == "queued"

        with start_worker(broker_url=url):
            time.sleep(1)
            assert TaskRun.objects.get(pk=scoring.pk).state == "queued"  # nothing for the worker to take
            # The beat's sweep: the run waited, its queue is empty, so its message was lost.
            assert core_services.task_runs_recover(queued_after=timedelta(0))["resent"] == [scoring.pk]
            row = finished(scoring)
    assert (row.state, row.attempts) == ("done", 1)
    articles = sorted(scoring.args[0])
    assert len(articles) == 4
    assert [ArticleSentiment.objects.filter(article_id=pk).count() for pk in articles] == [1, 1, 1, 1]

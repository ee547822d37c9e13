import os
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core.celery import app as celery_app
from core.models import WorkerHeartbeat
from tests.workers import celery_worker, require_redis

pytestmark = pytest.mark.django_db

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/1")


def beat(hostname, queues="default,ml", age_seconds=0):
    now = timezone.now()
    return WorkerHeartbeat.objects.create(
        hostname=hostname, queues=queues, pid=1, started_at=now,
        last_seen=now - timedelta(seconds=age_seconds),
    )


def test_healthz_is_degraded_without_workers(client):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True
    assert body["checks"]["workers"]["ok"] is False


def test_healthz_ignores_stale_heartbeats(client):
    beat("old@host", age_seconds=3600)
    assert client.get(reverse("healthz")).json()["checks"]["workers"]["ok"] is False


def test_healthz_reports_live_workers_and_uncovered_queues(client):
    beat("cpu@host", queues="default")
    body = client.get(reverse("healthz")).json()
    assert body["status"] == "ok"
    workers = body["checks"]["workers"]
    assert workers["count"] == 1
    assert workers["queues"] == ["default"]
    assert workers["queues_without_worker"] == ["ml"]


def test_healthz_is_down_when_the_broker_is_unreachable(client, monkeypatch):
    # Celery reads CELERY_BROKER_URL from the environment before its own settings.
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setitem(celery_app.conf, "broker_url", "redis://127.0.0.1:1/0")
    monkeypatch.setitem(celery_app.conf, "broker_write_url", None)
    monkeypatch.setitem(celery_app.conf, "broker_transport_options", {})
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["checks"]["broker"]["ok"] is False
    assert "error" in body["checks"]["broker"]


def test_healthz_allows_only_get(client):
    assert client.post(reverse("healthz")).status_code == 405


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_healthz_sees_a_real_worker_and_forgets_it_after_shutdown(client, tmp_path):
    require_redis(REDIS_URL)
    with celery_worker(broker_url=REDIS_URL, queues="ml", log_dir=tmp_path) as (_, hostname):
        workers = client.get(reverse("healthz")).json()["checks"]["workers"]
        assert [w["hostname"] for w in workers["workers"]] == [hostname]
        assert workers["queues"] == ["ml"]
    # A clean shutdown removes the worker's row.
    assert not WorkerHeartbeat.objects.filter(hostname=hostname).exists()

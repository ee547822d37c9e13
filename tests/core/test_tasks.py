"""A real worker process, a real broker, and the result in the database."""

import os
import uuid

import pytest
from django_celery_results.models import TaskResult
from kombu import Connection

from core.celery import app as celery_app
from core.tasks import ping
from tests.workers import celery_worker, require_redis, wait_for

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/1")


def filesystem_transport_options(broker_dir):
    for sub in ("queue", "processed", "control"):
        (broker_dir / sub).mkdir(parents=True, exist_ok=True)
    return {
        "control_folder": str(broker_dir / "control"),
        "data_folder_in": str(broker_dir / "queue"),
        "data_folder_out": str(broker_dir / "queue"),
        "processed_folder": str(broker_dir / "processed"),
        "polling_interval": 0.1,
    }


def send_ping(url: str, transport_options=None) -> str:
    """Publish core.ping through the broker at `url`; returns the task id."""
    token = uuid.uuid4().hex
    with Connection(url, transport_options=transport_options or {}) as conn, conn.Producer() as producer:
        result = ping.apply_async(args=[token], producer=producer)
    return result.id, token


def stored_result(task_id: str):
    return TaskResult.objects.filter(task_id=task_id, status="SUCCESS").first()


def purge(url: str, transport_options=None):
    with Connection(url, transport_options=transport_options or {}) as conn:
        for queue in celery_app.conf.task_queues:
            queue.bind(conn.default_channel).purge()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_redis_worker_runs_a_task_and_stores_the_result(tmp_path):
    require_redis(REDIS_URL)
    purge(REDIS_URL)
    with celery_worker(broker_url=REDIS_URL, log_dir=tmp_path) as (_, hostname):
        task_id, token = send_ping(REDIS_URL)
        row = wait_for(lambda: stored_result(task_id), timeout=60, what="the task result row")

    assert row.task_name == "core.ping"
    assert token in row.result
    assert row.worker == hostname


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_embedded_broker_worker_runs_a_task_and_stores_the_result(tmp_path):
    options = filesystem_transport_options(tmp_path / "broker")
    env = {"PARLANCE_BROKER_DIR": str(tmp_path / "broker"), "CELERY_POLLING_INTERVAL": "0.1"}
    with celery_worker(broker_url="filesystem://", extra_env=env, log_dir=tmp_path):
        task_id, token = send_ping("filesystem://", options)
        row = wait_for(lambda: stored_result(task_id), timeout=60, what="the task result row")

    assert token in row.result


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_embedded_broker_keeps_tasks_queued_while_no_worker_runs(tmp_path):
    options = filesystem_transport_options(tmp_path / "broker")
    env = {"PARLANCE_BROKER_DIR": str(tmp_path / "broker"), "CELERY_POLLING_INTERVAL": "0.1"}
    with celery_worker(broker_url="filesystem://", extra_env=env, log_dir=tmp_path):
        first_id, _ = send_ping("filesystem://", options)
        wait_for(lambda: stored_result(first_id), timeout=60, what="the first result")

    # The worker has stopped: what is sent now waits on disk for the next worker.
    queued = [send_ping("filesystem://", options)[0] for _ in range(3)]
    assert len(list((tmp_path / "broker" / "queue").glob("*.msg"))) == 3
    assert not TaskResult.objects.filter(task_id__in=queued).exists()

    with celery_worker(broker_url="filesystem://", extra_env=env, log_dir=tmp_path):
        wait_for(
            lambda: TaskResult.objects.filter(task_id__in=queued, status="SUCCESS").count() == 3,
            timeout=60,
            what="the three queued results",
        )
    assert list((tmp_path / "broker" / "queue").glob("*.msg")) == []


@pytest.mark.parametrize(
    ("task_name", "queue"),
    [("core.ping", "default"), ("finance.ingest_feed", "default"), ("mlcore.finetune_run", "ml")],
)
def test_tasks_route_to_their_queue(task_name, queue):
    route = celery_app.amqp.router.route({}, task_name)
    assert route["queue"].name == queue
    assert route["queue"].routing_key == queue
    assert route["queue"].exchange.name == queue

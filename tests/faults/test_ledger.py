"""The task ledger (core.TaskRun) without workers: claims, attempts, the recovery sweep's decisions."""

from datetime import timedelta

import pytest
from celery import current_app
from django.utils import timezone

from core import services
from core.models import TaskRun, WorkerHeartbeat
from tests.workers import purge_app_queues, require_redis

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """Messages the services send (name, args, kwargs, task_id), captured instead of reaching a broker."""
    out = []
    monkeypatch.setattr(current_app, "send_task", lambda name, args=None, kwargs=None, task_id=None, **k:
                        out.append((name, args, kwargs, task_id)))
    return out


def queued(django_capture_on_commit_callbacks, **kwargs) -> TaskRun:
    with django_capture_on_commit_callbacks(execute=True):
        return services.task_run_enqueue(task="finance.poll_feed", args=[7], **kwargs)


def heartbeat(hostname: str, seconds_ago: float) -> None:
    seen = timezone.now() - timedelta(seconds=seconds_ago)
    WorkerHeartbeat.objects.create(hostname=hostname, queues="default", pid=1, started_at=seen, last_seen=seen)


def test_enqueue_records_the_run_and_sends_its_id_only_after_commit(sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = services.task_run_enqueue(task="finance.poll_feed", args=[7])
    assert sent == [] and len(callbacks) == 1
    callbacks[0]()
    assert sent == [("finance.poll_feed", [7], {"run_id": run.pk}, run.celery_task_id)]
    assert (run.state, run.attempts, run.max_attempts) == ("queued", 0, 3)


def test_a_claim_counts_the_attempt_and_only_one_delivery_wins(sent, django_capture_on_commit_callbacks):
    run = queued(django_capture_on_commit_callbacks)
    assert services.task_run_claim(run_id=run.pk, celery_task_id=run.celery_task_id, worker="w1@h")
    # A second message of the same run (a re-send) finds it claimed.
    assert not services.task_run_claim(run_id=run.pk, celery_task_id="another-message", worker="w2@h")
    row = TaskRun.objects.get(pk=run.pk)
    assert (row.state, row.attempts, row.worker) == ("running", 1, "w1@h")
    # The broker handing the same message out again (its worker process was lost) may claim it again.
    assert services.task_run_claim(run_id=run.pk, celery_task_id=run.celery_task_id, worker="w3@h")
    services.task_run_finish(run_id=run.pk, celery_task_id=run.celery_task_id)
    row = TaskRun.objects.get(pk=run.pk)
    assert (row.state, row.attempts, row.worker) == ("done", 2, "w3@h")
    assert not services.task_run_claim(run_id=run.pk, celery_task_id=run.celery_task_id, worker="w4@h")


def test_a_redelivery_past_max_attempts_fails_the_run_with_a_reason(sent, django_capture_on_commit_callbacks):
    run = queued(django_capture_on_commit_callbacks, max_attempts=2)
    for _ in range(2):
        assert services.task_run_claim(run_id=run.pk, celery_task_id=run.celery_task_id, worker="w@h")
    assert not services.task_run_claim(run_id=run.pk, celery_task_id=run.celery_task_id, worker="w@h")
    row = TaskRun.objects.get(pk=run.pk)
    assert (row.state, row.attempts) == ("failed", 2)
    assert "lost 2 times; giving up after 2 attempts" in row.error


def test_the_sweep_requeues_a_lost_workers_run_and_leaves_a_live_one_alone(sent, django_capture_on_commit_callbacks):
    heartbeat("alive@h", seconds_ago=1)
    heartbeat("dead@h", seconds_ago=120)
    lost, busy, orphan = (queued(django_capture_on_commit_callbacks) for _ in range(3))
    for run, worker in ((lost, "dead@h"), (busy, "alive@h"), (orphan, "never-beat@h")):
        services.task_run_claim(run_id=run.pk, celery_task_id=run.celery_task_id, worker=worker)
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        outcome = services.task_runs_recover(stale_after=timedelta(seconds=30))
    assert outcome == {"requeued": [lost.pk, orphan.pk], "failed": [], "resent": []}
    lost_row = TaskRun.objects.get(pk=lost.pk)
    assert (lost_row.state, lost_row.attempts) == ("queued", 1)
    assert lost_row.celery_task_id != lost.celery_task_id
    assert "worker dead@h was lost during attempt 1" in lost_row.error
    assert ("finance.poll_feed", [7], {"run_id": lost.pk}, lost_row.celery_task_id) in sent
    assert TaskRun.objects.get(pk=busy.pk).state == "running"


def test_the_sweep_fails_a_run_out_of_attempts_with_a_reason(sent, django_capture_on_commit_callbacks):
    run = queued(django_capture_on_commit_callbacks, max_attempts=1)
    services.task_run_claim(run_id=run.pk, celery_task_id=run.celery_task_id, worker="dead@h")
    sent.clear()
    assert services.task_runs_recover(stale_after=timedelta(0)) == {"requeued": [], "failed": [run.pk], "resent": []}
    row = TaskRun.objects.get(pk=run.pk)
    assert (row.state, row.attempts, row.max_attempts) == ("failed", 1, 1)
    assert row.error == "The worker running it (dead@h) was lost on each of 1 attempts; giving up after 1."
    assert sent == []
    assert services.task_runs_recover(stale_after=timedelta(0)) == {"requeued": [], "failed": [], "resent": []}


def test_a_task_that_raises_ends_failed_with_the_exception(django_capture_on_commit_callbacks, sent):
    from finance.tasks import score_articles
    from mlcore.api import NoActiveVersion

    with django_capture_on_commit_callbacks(execute=True):
        run = services.task_run_enqueue(task="finance.score_articles", args=[[1]])
    with pytest.raises(NoActiveVersion):
        score_articles.apply(args=[[1]], kwargs={"run_id": run.pk}, task_id=run.celery_task_id)
    row = TaskRun.objects.get(pk=run.pk)
    assert (row.state, row.attempts) == ("failed", 1)
    assert row.error.startswith("NoActiveVersion: ")


def test_a_message_without_a_run_gets_one_on_delivery():
    from finance.tasks import poll_feed

    assert poll_feed.apply(args=[12345], task_id="beat-sent-1").get() == {"skipped": "no such feed source"}
    row = TaskRun.objects.get(celery_task_id="beat-sent-1")
    assert (row.task, row.args, row.state, row.attempts) == ("finance.poll_feed", [12345], "done", 1)


def test_a_queued_run_is_resent_only_once_its_queue_is_empty(django_capture_on_commit_callbacks):
    from core.celery import app

    if app.conf.broker_url.startswith("redis"):
        require_redis(app.conf.broker_url)
    purge_app_queues()
    run = services.task_run_enqueue(task="finance.poll_feed", args=[7])  # its message "lost": never sent
    current_app.send_task("core.ping", args=["someone else's message"])  # still in line on `default`
    try:
        assert services.task_runs_recover(queued_after=timedelta(0))["resent"] == []
        purge_app_queues()
        with django_capture_on_commit_callbacks(execute=False):
            assert services.task_runs_recover(queued_after=timedelta(0))["resent"] == [run.pk]
        assert services.task_runs_recover(queued_after=timedelta(minutes=5))["resent"] == []
    finally:
        purge_app_queues()


def test_old_done_runs_are_pruned(settings, sent, django_capture_on_commit_callbacks):
    old, recent = queued(django_capture_on_commit_callbacks), queued(django_capture_on_commit_callbacks)
    TaskRun.objects.filter(pk=old.pk).update(state="done", finished_at=timezone.now() - timedelta(days=8))
    TaskRun.objects.filter(pk=recent.pk).update(state="done", finished_at=timezone.now() - timedelta(days=6))
    services.task_runs_recover()
    assert list(TaskRun.objects.values_list("pk", flat=True)) == [recent.pk]


def test_the_beat_runs_the_sweep_every_minute_on_the_default_queue(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["core-recover-task-runs"]
    assert (entry["task"], entry["schedule"]) == ("core.taskruns_recover", 60.0)
    assert current_app.amqp.router.route({}, "core.taskruns_recover")["queue"].name == "default"

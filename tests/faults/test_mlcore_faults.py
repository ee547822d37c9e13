"""A queued training job whose message the broker lost is re-sent by mlcore's sweep (jobs_recover).

No worker: what is checked is the message in the broker's `ml` queue (the claim in finetune_run, covered in
tests/mlcore, makes an extra message harmless).
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.services import task_messages_waiting
from mlcore import services
from mlcore.models import Dataset, Task, TrainingJob
from tests.mlcore.conftest import sentiment_csv
from tests.workers import purge_app_queues, require_redis

pytestmark = pytest.mark.django_db


@pytest.fixture
def empty_broker():
    from core.celery import app

    if app.conf.broker_url.startswith("redis"):
        require_redis(app.conf.broker_url)
    purge_app_queues()
    yield
    purge_app_queues()


def test_a_queued_job_whose_message_was_lost_is_resent_once_the_ml_queue_is_empty(
        empty_broker, mlcore_home, django_capture_on_commit_callbacks):
    dataset = services.dataset_create(name="tiny sentiment", kind=Dataset.Kind.CLASSIFICATION,
                                      data=sentiment_csv(), filename="tiny.csv")
    with django_capture_on_commit_callbacks(execute=True):
        job = services.finetune_start(task=Task.FINANCE_SENTIMENT, dataset=dataset)
    assert task_messages_waiting("mlcore.finetune_run") == 1
    purge_app_queues()  # the broker lost it (as a Redis restart would)
    TrainingJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=10))

    with django_capture_on_commit_callbacks(execute=True):
        assert services.jobs_recover(queued_after=timedelta(minutes=30))["resent"] == []  # not waited that long
        assert services.jobs_recover(queued_after=timedelta(minutes=5)) == {
            "requeued": [], "failed": [], "resent": [job.pk]}
    assert task_messages_waiting("mlcore.finetune_run") == 1
    resent_id = TrainingJob.objects.get(pk=job.pk).celery_task_id
    assert resent_id != job.celery_task_id
    # While a message waits in the ml queue nothing is re-sent again.
    with django_capture_on_commit_callbacks(execute=True):
        assert services.jobs_recover(queued_after=timedelta(minutes=5))["resent"] == []
    assert task_messages_waiting("mlcore.finetune_run") == 1
    # A running, a cancelled or a just-created job is never re-sent.
    purge_app_queues()
    TrainingJob.objects.filter(pk=job.pk).update(cancel_requested=True)
    assert services.jobs_recover(queued_after=timedelta(minutes=5))["resent"] == []
    fresh = services.finetune_start(task=Task.FINANCE_SENTIMENT, dataset=dataset, enqueue=False)
    assert services.jobs_recover(queued_after=timedelta(minutes=5))["resent"] == []
    assert TrainingJob.objects.get(pk=fresh.pk).celery_task_id == fresh.celery_task_id

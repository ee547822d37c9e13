"""Fine-tuning through a real worker process: progress rows, cancel, and resume after kill -9."""

import os
import signal
from datetime import timedelta

import pytest
from django.conf import settings

from mlcore import api, services
from mlcore.models import Dataset, Task, TrainingJob
from tests.mlcore.conftest import sentiment_csv
from tests.workers import app_broker_env, celery_worker, purge_app_queues, require_redis, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def ml_worker_env(mlcore_home, tiny_encoder_dir):
    from core.celery import app

    if app.conf.broker_url.startswith("redis"):
        require_redis(app.conf.broker_url)
    purge_app_queues()
    return {**app_broker_env(), "MLCORE_HOME": str(mlcore_home), "MLCORE_ENCODER": str(tiny_encoder_dir)}


def dataset(rows_per_class):
    return services.dataset_create(name=f"sentiment x{rows_per_class}", kind=Dataset.Kind.CLASSIFICATION,
                                   data=sentiment_csv(rows_per_class=rows_per_class), filename="s.csv")


def job_row(job):
    return TrainingJob.objects.get(pk=job.pk)


def test_a_finetune_runs_on_the_ml_worker_and_registers_a_version(ml_worker_env, tmp_path):
    ds = dataset(40)
    with celery_worker(broker_url=ml_worker_env["CELERY_BROKER_URL"], queues="ml", extra_env=ml_worker_env,
                       log_dir=tmp_path) as (_, hostname):
        job = api.start_finetune(Task.FINANCE_SENTIMENT, ds, epochs=3, batch_size=8)
        seen_progress = set()

        def finished():
            row = job_row(job)
            seen_progress.add(round(row.progress))
            return row.state in ("succeeded", "failed") and row

        row = wait_for(finished, timeout=240, interval=0.1, what="the fine-tune to finish")
    assert row.state == "succeeded", row.log_tail
    assert row.worker == hostname and row.attempts == 1
    assert len(seen_progress) >= 2  # progress was visible while it ran, not only at the end
    assert [h["epoch"] for h in row.history if "train_loss" in h] == [1, 2, 3]
    version = row.result_version
    assert version.metrics["split"] == "validation" and "macro_f1" in version.metrics
    # The version serves predictions once activated.
    services.model_version_activate(version=version)
    out = api.predict(Task.FINANCE_SENTIMENT, ["Acme profit rose", "Globex loss widened"])
    assert [set(o["scores"]) for o in out] == [{"positive", "neutral", "negative"}] * 2


def test_a_running_finetune_can_be_cancelled(ml_worker_env, tmp_path):
    ds = dataset(400)
    with celery_worker(broker_url=ml_worker_env["CELERY_BROKER_URL"], queues="ml", extra_env=ml_worker_env,
                       log_dir=tmp_path):
        job = api.start_finetune(Task.FINANCE_SENTIMENT, ds, epochs=50, patience=100)
        wait_for(lambda: job_row(job).progress > 0, timeout=120, what="training to start")
        services.finetune_cancel(job=job_row(job))
        row = wait_for(lambda: job_row(job).state != "running" and job_row(job), timeout=60, what="the cancel")
    assert row.state == "cancelled"
    assert row.result_version is None
    assert not (settings.MLCORE_HOME / "jobs" / str(job.pk)).exists()


def test_a_job_whose_worker_is_killed_resumes_from_its_checkpoint(ml_worker_env, tmp_path):
    ds = dataset(300)
    epochs = 6
    with celery_worker(broker_url=ml_worker_env["CELERY_BROKER_URL"], queues="ml", extra_env=ml_worker_env,
                       log_dir=tmp_path) as (proc, _):
        job = api.start_finetune(Task.FINANCE_SENTIMENT, ds, epochs=epochs, patience=100)
        wait_for(lambda: any("train_loss" in h for h in job_row(job).history), timeout=180,
                 what="the first epoch's checkpoint")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    row = job_row(job)
    assert row.state == "running"  # nobody has told the database yet

    assert services.jobs_recover(stale_after=timedelta(0)) == {"requeued": [job.pk], "failed": [], "resent": []}
    with celery_worker(broker_url=ml_worker_env["CELERY_BROKER_URL"], queues="ml", extra_env=ml_worker_env,
                       log_dir=tmp_path):
        row = wait_for(lambda: job_row(job).state in ("succeeded", "failed") and job_row(job), timeout=300,
                       what="the resumed job to finish")
    assert row.state == "succeeded", row.log_tail
    assert row.attempts == 2
    assert "resuming from the last checkpoint" in row.log_tail
    epochs_seen = [h["epoch"] for h in row.history if "train_loss" in h]
    assert epochs_seen == sorted(set(epochs_seen)) == list(range(1, epochs_seen[-1] + 1))
    assert epochs_seen[-1] == epochs

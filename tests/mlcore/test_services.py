from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from mlcore import services
from mlcore.models import Dataset, Family, ModelVersion, Task, TrainingJob
from mlcore.signals import model_version_activated
from tests.mlcore.conftest import sentiment_csv

pytestmark = pytest.mark.django_db


def version(task=Task.FINANCE_SENTIMENT, scope="", **extra):
    return services.model_version_register(task=task, family=Family.CLASSIFIER, base_spec="package:minilm",
                                           scope=scope, **extra)


def test_the_database_allows_one_active_version_per_task_and_scope():
    ModelVersion.objects.create(task=Task.FINANCE_SENTIMENT, family=Family.CLASSIFIER, base_spec="x", state="active")
    ModelVersion.objects.create(task=Task.ESSAY_SCORE, scope="assignment:1", family=Family.REGRESSOR,
                                base_spec="x", state="active")
    ModelVersion.objects.create(task=Task.ESSAY_SCORE, scope="assignment:2", family=Family.REGRESSOR,
                                base_spec="x", state="active")
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.create(task=Task.FINANCE_SENTIMENT, family=Family.CLASSIFIER, base_spec="y",
                                    state="active")


def test_activation_swaps_the_active_version_and_signals_after_commit(django_capture_on_commit_callbacks):
    first, second = version(), version()
    received = []

    def listener(sender, version, **kwargs):
        received.append(version.pk)

    model_version_activated.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.model_version_activate(version=first)
        with django_capture_on_commit_callbacks(execute=True):
            services.model_version_activate(version=second)
    finally:
        model_version_activated.disconnect(listener)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state) == ("ready", "active")
    assert second.activated_at is not None
    assert received == [first.pk, second.pk]


def test_activating_the_active_version_again_changes_nothing():
    v = services.model_version_activate(version=version())
    assert services.model_version_activate(version=v).state == "active"
    assert ModelVersion.objects.filter(state="active").count() == 1


def test_an_archived_version_cannot_be_activated_and_the_active_one_cannot_be_archived():
    active = services.model_version_activate(version=version())
    with pytest.raises(services.RegistryError, match="activate another version first"):
        services.model_version_archive(version=active)
    old = services.model_version_archive(version=version())
    assert old.state == "archived"
    with pytest.raises(services.RegistryError, match="archived version cannot be activated"):
        services.model_version_activate(version=old)


def test_scopes_have_their_own_active_version():
    a = services.model_version_activate(version=version(task=Task.ESSAY_SCORE, scope="assignment:1"))
    b = services.model_version_activate(version=version(task=Task.ESSAY_SCORE, scope="assignment:2"))
    a.refresh_from_db()
    assert a.state == b.state == "active"


def test_base_versions_are_registered_once(monkeypatch):
    first = services.base_versions_ensure()
    assert {v.task for v in first} == {Task.EMBED, Task.TUTOR, Task.STORY, Task.DIALOGUE}
    assert all(v.state == "active" for v in first)
    assert services.base_versions_ensure() == []


def test_dataset_create_cleans_dedups_and_splits(mlcore_home):
    csv = sentiment_csv(rows_per_class=30)
    first_row = csv.splitlines()[1]
    data = csv + first_row + b"\n,neutral\n"  # one exact duplicate, one row without text
    ds = services.dataset_create(name="s", kind=Dataset.Kind.CLASSIFICATION, data=data, filename="s.csv")
    assert ds.rows_read == 92
    assert ds.exact_duplicates == 1
    assert ds.rows_kept + ds.rows_rejected + ds.exact_duplicates + ds.near_duplicates == ds.rows_read
    assert ds.labels == ["negative", "neutral", "positive"]
    assert sum(ds.split_counts.values()) == ds.rows_kept
    assert ds.split_counts["train"] > ds.split_counts["validation"]
    assert any(r["line"] == 93 for r in ds.rejected)
    assert (mlcore_home / ds.path).exists()


def test_finetune_start_refuses_a_dataset_of_the_wrong_kind(mlcore_home):
    text = services.dataset_create(name="t", kind=Dataset.Kind.TEXT, data=b"one story here.\n\nanother story here.",
                                   filename="t.txt")
    with pytest.raises(services.RegistryError, match="trains on a text with a label dataset"):
        services.finetune_start(task=Task.FINANCE_SENTIMENT, dataset=text)
    assert not TrainingJob.objects.exists()


def test_a_queued_job_is_cancelled_at_once(sentiment_dataset, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = services.finetune_start(task=Task.FINANCE_SENTIMENT, dataset=sentiment_dataset)
    assert len(callbacks) == 1  # the enqueue waits for the commit
    job = services.finetune_cancel(job=job)
    assert job.state == "cancelled"
    assert services.finetune_run(job_id=job.pk) == "claimed elsewhere"
    with pytest.raises(services.RegistryError, match="already cancelled"):
        services.finetune_cancel(job=job)


def test_finetune_run_trains_registers_and_is_not_run_twice(sentiment_dataset, tiny_encoder_spec,
                                                           django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        job = services.finetune_start(task=Task.FINANCE_SENTIMENT, dataset=sentiment_dataset,
                                      params={"epochs": 2, "batch_size": 8})
    assert services.finetune_run(job_id=job.pk, worker="w1") == "succeeded"
    assert services.finetune_run(job_id=job.pk, worker="w2") == "claimed elsewhere"
    job.refresh_from_db()
    assert job.state == "succeeded" and job.progress == 100.0 and job.attempts == 1 and job.worker == "w1"
    epochs = [h for h in job.history if "train_loss" in h]
    steps = [h for h in job.history if "step" in h]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert steps and all(s["loss"] > 0 for s in steps)
    v = job.result_version
    assert v.state == "ready" and v.family == "classifier"
    assert v.label_map == ["negative", "neutral", "positive"]
    assert 0.0 <= v.metrics["accuracy"] <= 1.0 and v.metrics["split"] == "validation"
    assert v.metrics["dataset"] == "tiny sentiment"
    assert "done: version" in job.log_tail
    assert (services.specs.artifact_dir(v.artifact_path) / "parlance.json").exists()


@pytest.mark.parametrize("seconds", [0.0, 3600.0])
def test_step_reports_reach_the_row_at_most_every_few_seconds_and_none_is_lost(
        seconds, sentiment_dataset, tiny_encoder_spec, monkeypatch, django_capture_on_commit_callbacks):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    monkeypatch.setattr(services, "STEP_WRITE_SECONDS", seconds)
    with django_capture_on_commit_callbacks(execute=False):
        job = services.finetune_start(task=Task.FINANCE_SENTIMENT, dataset=sentiment_dataset,
                                      params={"epochs": 2, "batch_size": 4})
    with CaptureQueriesContext(connection) as queries:
        assert services.finetune_run(job_id=job.pk) == "succeeded"
    job.refresh_from_db()
    steps = [h["step"] for h in job.history if "step" in h]
    step_writes = [q for q in queries.captured_queries
                   if q["sql"].startswith('UPDATE "mlcore_trainingjob"') and '"progress" = ' in q["sql"]
                   and '"result_version_id"' not in q["sql"]]
    # Batches of 4; a step report every 5 steps and at the end of each epoch.
    per_epoch = -(-sentiment_dataset.split_counts["train"] // 4)
    expected = [s for s in range(1, 2 * per_epoch + 1) if s % 5 == 0 or s % per_epoch == 0]
    assert steps == expected and len(steps) >= 4 and [h["epoch"] for h in job.history if "train_loss" in h] == [1, 2]
    # every report written as it came, or only the first (the rest with the epochs and the end): all are kept
    assert len(step_writes) == (len(steps) if seconds == 0 else 1)


def test_a_failing_job_ends_failed_with_its_reason(sentiment_dataset, monkeypatch, tmp_path,
                                                  django_capture_on_commit_callbacks):
    monkeypatch.setenv("MLCORE_ENCODER", str(tmp_path / "no-model-here"))
    with django_capture_on_commit_callbacks(execute=False):
        job = services.finetune_start(task=Task.FINANCE_SENTIMENT, dataset=sentiment_dataset)
    assert services.finetune_run(job_id=job.pk) == "failed"
    job.refresh_from_db()
    assert job.state == "failed"
    assert "No Hugging Face model" in job.error


def test_lost_jobs_are_requeued_then_failed_when_attempts_run_out(sentiment_dataset,
                                                                  django_capture_on_commit_callbacks):
    from django.utils import timezone

    with django_capture_on_commit_callbacks(execute=False):
        job = services.finetune_start(task=Task.FINANCE_SENTIMENT, dataset=sentiment_dataset)
    old = timezone.now() - timedelta(hours=1)
    TrainingJob.objects.filter(pk=job.pk).update(state="running", attempts=1, heartbeat_at=old)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert services.jobs_recover() == {"requeued": [job.pk], "failed": [], "resent": []}
    assert len(callbacks) == 1
    job.refresh_from_db()
    assert job.state == "queued" and "worker lost" in job.log_tail

    TrainingJob.objects.filter(pk=job.pk).update(state="running", attempts=3, heartbeat_at=old)
    assert services.jobs_recover() == {"requeued": [], "failed": [job.pk], "resent": []}
    job.refresh_from_db()
    assert job.state == "failed" and "stopped 3 times" in job.error


def test_a_job_with_fresh_progress_is_left_alone(sentiment_dataset, django_capture_on_commit_callbacks):
    from django.utils import timezone

    with django_capture_on_commit_callbacks(execute=False):
        job = services.finetune_start(task=Task.FINANCE_SENTIMENT, dataset=sentiment_dataset)
    TrainingJob.objects.filter(pk=job.pk).update(state="running", attempts=1, heartbeat_at=timezone.now())
    assert services.jobs_recover() == {"requeued": [], "failed": [], "resent": []}

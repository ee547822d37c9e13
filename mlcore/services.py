"""State changes of the model registry: versions, fine-tuning jobs and their recovery."""

import logging
import shutil
import time
import traceback
import uuid
from datetime import timedelta
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core.services import task_messages_waiting
from mlcore import specs
from mlcore.models import TASK_FAMILIES, Dataset, Family, ModelVersion, Task, TrainingJob
from mlcore.signals import model_version_activated

log = logging.getLogger(__name__)

LOG_TAIL_CHARS = 8000
# A training step's report reaches the job row at most this often (the job page polls every 2 s); epochs and the
# last steps before them are written at once. A fast GPU job would otherwise rewrite its history many times a second.
STEP_WRITE_SECONDS = 2.0


class RegistryError(ValueError):
    """A registry action that cannot be done; the message says why."""


def model_version_register(
    *,
    task: str,
    family: str,
    base_spec: str,
    scope: str = "",
    artifact_path: str = "",
    label_map: list | None = None,
    metrics: dict | None = None,
    name: str = "",
) -> ModelVersion:
    """Record a ready model version (not yet active)."""
    return ModelVersion.objects.create(
        task=task, scope=scope, family=family, base_spec=base_spec, artifact_path=artifact_path,
        label_map=label_map or [], metrics=metrics or {}, name=name, state=ModelVersion.State.READY,
    )


def model_version_activate(*, version: ModelVersion) -> ModelVersion:
    """Make `version` the one active version of its task (and scope); the previous one goes back to ready."""
    with transaction.atomic():
        locked = list(
            ModelVersion.objects.select_for_update().filter(task=version.task, scope=version.scope).order_by("pk")
        )
        version = next(v for v in locked if v.pk == version.pk)
        if version.state not in (ModelVersion.State.READY, ModelVersion.State.ACTIVE):
            raise RegistryError(f"A {version.state} version cannot be activated; only a ready one can.")
        if version.state == ModelVersion.State.ACTIVE:
            return version
        ModelVersion.objects.filter(task=version.task, scope=version.scope, state=ModelVersion.State.ACTIVE).update(
            state=ModelVersion.State.READY
        )
        version.state = ModelVersion.State.ACTIVE
        version.activated_at = timezone.now()
        version.save(update_fields=["state", "activated_at"])
        transaction.on_commit(lambda: model_version_activated.send(sender=ModelVersion, version=version))
    return version


def model_version_archive(*, version: ModelVersion) -> ModelVersion:
    """Retire a version that is not active."""
    updated = ModelVersion.objects.filter(
        pk=version.pk, state__in=[ModelVersion.State.READY, ModelVersion.State.FAILED]
    ).update(state=ModelVersion.State.ARCHIVED)
    if not updated:
        version.refresh_from_db()
        if version.state == ModelVersion.State.ACTIVE:
            raise RegistryError("The active version cannot be archived: activate another version first.")
        raise RegistryError(f"A {version.state} version cannot be archived.")
    version.refresh_from_db()
    return version


def model_version_record_evaluation(*, version: ModelVersion, report: dict) -> ModelVersion:
    """Keep an evaluation report on the version, beside the metrics it was trained with."""
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        version.metrics = {**version.metrics, "evaluations": [*version.metrics.get("evaluations", []), report]}
        version.save(update_fields=["metrics"])
    return version


BASE_VERSIONS = [
    (Task.EMBED, Family.EMBEDDER, specs.encoder_spec),
    (Task.TUTOR, Family.CAUSAL_LM, specs.lm_spec),
    (Task.STORY, Family.CAUSAL_LM, specs.lm_spec),
    (Task.DIALOGUE, Family.CAUSAL_LM, specs.lm_spec),
]


def base_versions_ensure() -> list[ModelVersion]:
    """Register and activate the packaged base model for each task that can serve it untrained."""
    created = []
    for task, family, spec_fn in BASE_VERSIONS:
        spec = spec_fn()
        if ModelVersion.objects.filter(task=task, scope="", base_spec=spec, artifact_path="").exists():
            continue
        version = model_version_register(task=task, family=family, base_spec=spec, name=f"base {spec}")
        if not ModelVersion.objects.filter(task=task, scope="", state=ModelVersion.State.ACTIVE).exists():
            version = model_version_activate(version=version)
        created.append(version)
    return created


# --- fine-tuning jobs -------------------------------------------------------------------------

DATASET_KIND_FOR_FAMILY = {
    Family.CLASSIFIER: Dataset.Kind.CLASSIFICATION,
    Family.REGRESSOR: Dataset.Kind.REGRESSION,
    Family.CAUSAL_LM: Dataset.Kind.TEXT,
}


def finetune_start(
    *, task: str, dataset: Dataset, params: dict | None = None, scope: str = "", user=None,
    base_version: ModelVersion | None = None, enqueue: bool = True,
) -> TrainingJob:
    """Queue a fine-tune of `task` on `dataset`; the `ml` workers pick it up after commit.

    `enqueue=False` leaves the queued job for the caller to run (the `finetune --inline` command).
    """
    family = TASK_FAMILIES[Task(task)]
    expected = DATASET_KIND_FOR_FAMILY.get(family)
    if expected is None:
        raise RegistryError(f"Fine-tuning {Task(task).label} is not available yet.")
    if dataset.kind != expected:
        raise RegistryError(
            f"{Task(task).label} trains on a {Dataset.Kind(expected).label.lower()} dataset; "
            f"{dataset.name!r} is {Dataset.Kind(dataset.kind).label.lower()}."
        )
    if dataset.split_counts.get("train", 0) < 2:
        raise RegistryError(f"{dataset.name!r} has fewer than 2 training rows.")
    with transaction.atomic():
        job = TrainingJob.objects.create(
            task=task, scope=scope, dataset=dataset, params=params or {}, base_version=base_version,
            created_by=user, celery_task_id=str(uuid.uuid4()),
        )
        if enqueue:
            transaction.on_commit(lambda: _enqueue_run(job))
    return job


def _enqueue_run(job: TrainingJob) -> None:
    current_app.send_task("mlcore.finetune_run", args=[job.pk], task_id=job.celery_task_id)


def finetune_cancel(*, job: TrainingJob) -> TrainingJob:
    """Cancel a queued job at once; ask a running one to stop at its next step."""
    now = timezone.now()
    if TrainingJob.objects.filter(pk=job.pk, state=TrainingJob.State.QUEUED).update(
        state=TrainingJob.State.CANCELLED, cancel_requested=True, finished_at=now
    ):
        pass
    elif not TrainingJob.objects.filter(pk=job.pk, state=TrainingJob.State.RUNNING).update(cancel_requested=True):
        job.refresh_from_db()
        raise RegistryError(f"This job has already {job.state}.")
    job.refresh_from_db()
    return job


def _job_dir(job_id: int) -> Path:
    return Path(settings.MLCORE_HOME) / "jobs" / str(job_id)


def _append_log(job_id: int, line: str) -> None:
    job = TrainingJob.objects.only("log_tail").get(pk=job_id)
    stamp = timezone.now().strftime("%H:%M:%S")
    tail = (job.log_tail + f"{stamp} {line}\n")[-LOG_TAIL_CHARS:]
    TrainingJob.objects.filter(pk=job_id).update(log_tail=tail, heartbeat_at=timezone.now())


def finetune_run(*, job_id: int, worker: str = "") -> str:
    """Run a queued job to the end, once: claims the row, trains, registers the version.

    Returns what happened ("claimed elsewhere", "succeeded", "failed", "cancelled").
    """
    from mlcore.selectors import dataset_rows  # noqa: PLC0415  (reads the dataset file)
    from mlcore.training import Callbacks, TrainingCancelled, train_encoder, train_lora  # noqa: PLC0415  (torch)

    now = timezone.now()
    claimed = TrainingJob.objects.filter(
        pk=job_id, state=TrainingJob.State.QUEUED, cancel_requested=False, attempts__lt=F("max_attempts")
    ).update(state=TrainingJob.State.RUNNING, attempts=F("attempts") + 1, started_at=now, heartbeat_at=now,
             worker=worker[:255])
    if not claimed:
        log.info("job %s not claimed (not queued, cancelled or out of attempts)", job_id)
        return "claimed elsewhere"
    job = TrainingJob.objects.select_related("dataset", "base_version").get(pk=job_id)
    work_dir = _job_dir(job.pk)
    work_dir.mkdir(parents=True, exist_ok=True)
    family = TASK_FAMILIES[Task(job.task)]
    history = list(job.history)
    step_write_due, cancel_check_due = _due_every(STEP_WRITE_SECONDS), _due_every(1.0)

    def on_step(event):
        history.append({k: event[k] for k in ("step", "epoch", "loss")})
        if not step_write_due():
            return
        TrainingJob.objects.filter(pk=job.pk).update(
            progress=min(max(event["progress"], 0.0), 99.0), history=history, heartbeat_at=timezone.now()
        )

    def on_epoch(event):
        history.append(event)
        TrainingJob.objects.filter(pk=job.pk).update(history=history, heartbeat_at=timezone.now())
        shown = ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in event.items())
        _append_log(job.pk, f"epoch {event['epoch']}: {shown}")

    def should_cancel():
        return cancel_check_due() and TrainingJob.objects.filter(pk=job.pk, cancel_requested=True).exists()

    try:
        base_spec, base_path = _training_base(job, family)
        train_rows = dataset_rows(dataset=job.dataset, split="train")
        val_rows = dataset_rows(dataset=job.dataset, split="validation")
        resumed = (work_dir / "checkpoint" / "state.pt").exists()
        _append_log(job.pk, f"attempt {job.attempts} on {worker or 'a worker'}: {len(train_rows)} training rows, "
                            f"{len(val_rows)} validation rows, base {base_spec}"
                            + (" (resuming from the last checkpoint)" if resumed else ""))
        callbacks = Callbacks(on_step=on_step, on_epoch=on_epoch, should_cancel=should_cancel)
        if family == Family.CAUSAL_LM:
            result = train_lora(
                base_path=base_path, train=[r["text"] for r in train_rows], validation=[r["text"] for r in val_rows],
                params=job.params, work_dir=work_dir, callbacks=callbacks, base_spec=base_spec,
            )
        else:
            result = train_encoder(
                base_path=base_path, kind=family.value, train=train_rows, validation=val_rows,
                labels=job.dataset.labels or None, params=job.params, work_dir=work_dir, callbacks=callbacks,
                base_spec=base_spec,
            )
    except TrainingCancelled:
        TrainingJob.objects.filter(pk=job.pk).update(state=TrainingJob.State.CANCELLED, history=history,
                                                     finished_at=timezone.now())
        _append_log(job.pk, "cancelled by an operator")
        shutil.rmtree(work_dir, ignore_errors=True)
        return "cancelled"
    except Exception as exc:
        _append_log(job.pk, "failed:\n" + "".join(traceback.format_exception(exc))[-3000:])
        TrainingJob.objects.filter(pk=job.pk).update(
            state=TrainingJob.State.FAILED, error=f"{type(exc).__name__}: {exc}", history=history,
            finished_at=timezone.now()
        )
        return "failed"

    artifact = Path("versions") / f"job-{job.pk}"
    target = Path(settings.MLCORE_HOME) / artifact
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(result.best_dir), target)
    metrics = {**result.metrics, "dataset": job.dataset.name, "dataset_id": job.dataset.pk, "split": "validation",
               "epochs_run": result.epochs_run, "stopped_early": result.stopped_early}
    with transaction.atomic():
        version = model_version_register(
            task=job.task, scope=job.scope, family=Family.LORA_ADAPTER if family == Family.CAUSAL_LM else family,
            base_spec=base_spec, artifact_path=str(artifact),
            label_map=job.dataset.labels if family == Family.CLASSIFIER else [], metrics=metrics,
            name=f"{job.dataset.name} (job {job.pk})",
        )
        TrainingJob.objects.filter(pk=job.pk).update(
            state=TrainingJob.State.SUCCEEDED, progress=100.0, result_version=version, history=history,
            finished_at=timezone.now(), heartbeat_at=timezone.now(),
        )
    _append_log(job.pk, f"done: version {version.pk} registered ({', '.join(f'{k}={v}' for k, v in metrics.items())})")
    shutil.rmtree(work_dir, ignore_errors=True)
    return "succeeded"


def _due_every(seconds: float):
    """A check that is true at its first call and then at most once every `seconds`."""
    last = [float("-inf")]

    def due() -> bool:
        now = time.monotonic()
        if now - last[0] < seconds:
            return False
        last[0] = now
        return True

    return due


def _training_base(job: TrainingJob, family: Family) -> tuple[str, str]:
    """The spec and the directory a job trains from: its base version, the task's model, or the packaged one."""
    from mlcore.selectors import NoActiveVersion, active_version  # noqa: PLC0415

    version = job.base_version
    if version is None and family == Family.CAUSAL_LM:
        try:
            version = active_version(task=job.task)
        except NoActiveVersion:
            version = None
    if version is not None:
        path = specs.artifact_dir(version.artifact_path) if version.artifact_path else specs.resolve(version.base_spec)
        return version.base_spec, str(path)
    spec = specs.lm_spec() if family == Family.CAUSAL_LM else specs.encoder_spec()
    return spec, specs.resolve(spec)


def jobs_recover(*, stale_after: timedelta | None = None, queued_after: timedelta | None = None) -> dict:
    """Requeue jobs whose worker stopped sending progress; fail them once attempts run out; re-send lost messages.

    A queued job is re-sent when it has waited longer than `queued_after` (default PARLANCE_TASK_RESEND_SECONDS,
    as for the task ledger) and the ml queue is empty: its message was lost (a restarted Redis keeps nothing).
    The claim in finetune_run makes an extra message harmless.
    """
    stale_after = stale_after if stale_after is not None else timedelta(seconds=settings.MLCORE_JOB_STALE_SECONDS)
    if queued_after is None:
        queued_after = timedelta(seconds=settings.PARLANCE_TASK_RESEND_SECONDS)
    horizon = timezone.now() - stale_after
    requeued, failed = [], []
    stale = TrainingJob.objects.filter(state=TrainingJob.State.RUNNING).filter(
        Q(heartbeat_at__lt=horizon) | Q(heartbeat_at__isnull=True)
    )
    for job in stale:
        seen = job.heartbeat_at.isoformat(timespec="seconds") if job.heartbeat_at else "never"
        if job.attempts >= job.max_attempts:
            if TrainingJob.objects.filter(pk=job.pk, state=TrainingJob.State.RUNNING,
                                          heartbeat_at=job.heartbeat_at).update(
                state=TrainingJob.State.FAILED, finished_at=timezone.now(),
                error=f"The worker running this job stopped {job.attempts} times (last progress {seen}); "
                      f"giving up after {job.max_attempts} attempts.",
            ):
                failed.append(job.pk)
            continue
        with transaction.atomic():
            new_task_id = str(uuid.uuid4())
            if TrainingJob.objects.filter(pk=job.pk, state=TrainingJob.State.RUNNING,
                                          heartbeat_at=job.heartbeat_at).update(
                state=TrainingJob.State.QUEUED, celery_task_id=new_task_id
            ):
                job.celery_task_id = new_task_id
                transaction.on_commit(lambda job=job: _enqueue_run(job))
                requeued.append(job.pk)
        if job.pk in requeued:
            _append_log(job.pk, f"worker lost (last progress {seen}); requeued to resume from the last checkpoint")
    return {"requeued": requeued, "failed": failed, "resent": _queued_jobs_resend(queued_after, skip=requeued)}


def _queued_jobs_resend(queued_after: timedelta, *, skip: list[int]) -> list[int]:
    """Re-send queued jobs that waited past `queued_after` while the ml queue is empty (their message was lost).

    A job queued again by this sweep (its worker lost) waits from then; the job has no "queued at" field, so
    the last of its creation and its last progress stands for it.
    """
    cutoff = timezone.now() - queued_after
    waiting = TrainingJob.objects.filter(state=TrainingJob.State.QUEUED, cancel_requested=False,
                                         created_at__lt=cutoff, attempts__lt=F("max_attempts")).filter(
        Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=cutoff)).exclude(pk__in=skip).order_by("pk")
    jobs = list(waiting)
    if not jobs or task_messages_waiting("mlcore.finetune_run"):
        return []  # nothing waited that long, or its message may still be in line: wait until the queue drains
    resent = []
    for job in jobs:
        new_task_id = str(uuid.uuid4())
        with transaction.atomic():
            if TrainingJob.objects.filter(pk=job.pk, state=TrainingJob.State.QUEUED,
                                          celery_task_id=job.celery_task_id).update(celery_task_id=new_task_id):
                job.celery_task_id = new_task_id
                transaction.on_commit(lambda job=job: _enqueue_run(job), robust=True)
                resent.append(job.pk)
    if resent:
        log.warning("training jobs re-sent (their messages were lost): %s", resent)
    return resent


# --- datasets ----------------------------------------------------------------------------------


def dataset_create(
    *, name: str, kind: str, data: bytes, filename: str, fmt: str | None = None, user=None,
    text_column: str = "text", label_column: str | None = None, target_column: str | None = None,
    min_chars: int = 3,
) -> Dataset:
    """Read an upload, clean and deduplicate it, split it by hash, and store it as a Dataset.

    Raises mlcore.data.DataError with a readable message when the file cannot be used at all;
    rows that cannot be used are kept in `rejected` with their reason.
    """
    import json  # noqa: PLC0415

    from mlcore import data as pipeline  # noqa: PLC0415

    fmt = pipeline.format_for(filename, fmt)
    if kind == Dataset.Kind.CLASSIFICATION and fmt != "phrasebank" and not label_column:
        label_column = "label"
    if kind == Dataset.Kind.REGRESSION and not target_column:
        target_column = "target"
    read = pipeline.read_upload(data, filename=filename, fmt=fmt, text=text_column, label=label_column,
                                target=target_column)
    clean = pipeline.clean_and_dedup(read.rows, min_chars=min_chars)
    if not clean.rows:
        raise pipeline.DataError(f"{filename}: no usable rows ({len(read.rejected) + len(clean.rejected)} rejected).")
    splits = pipeline.assign_splits(clean.rows)
    labels = sorted({r.label for r in clean.rows if r.label is not None}) if kind == Dataset.Kind.CLASSIFICATION else []
    rejected = [{"line": r.line, "reason": r.reason, "text": r.text} for r in [*read.rejected, *clean.rejected]]
    with transaction.atomic():
        dataset = Dataset.objects.create(
            name=name, kind=kind, source_name=filename[:255], path="", created_by=user,
            rows_read=len(read.rows) + len(read.rejected), rows_kept=len(clean.rows), rows_rejected=len(rejected),
            exact_duplicates=clean.exact_duplicates, near_duplicates=clean.near_duplicates,
            split_counts={split: len(rows) for split, rows in splits.items()}, labels=labels, rejected=rejected,
        )
        relative = Path("datasets") / f"{dataset.pk}.jsonl"
        target = specs.artifact_dir(str(relative))
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "w", encoding="utf-8") as handle:
            for split, rows in splits.items():
                for row in rows:
                    record = {"text": row.text, "split": split, "line": row.line}
                    if kind == Dataset.Kind.CLASSIFICATION:
                        record["label"] = row.label
                    elif kind == Dataset.Kind.REGRESSION:
                        record["target"] = row.target
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        dataset.path = str(relative)
        dataset.save(update_fields=["path"])
    return dataset

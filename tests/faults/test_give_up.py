"""Without workers: education's and finance's rows follow the task ledger when a worker is lost.

The ledger's sweep (core.task_runs_recover) requeues a lost worker's run, and the rerun takes over the row the
lost worker left running; when attempts run out it fails the run and the app's give-up hook fails its row with a
reason. The kill -9 itself is exercised with real workers in test_education_faults.py and test_worker_kill.py.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from core import services as core_services
from core.models import TaskRun
from core.roles import Role
from education.models import Calibration, CourseMaterial, Grade
from education.services import calibration, grading
from education.services import material as material_services
from finance.models import TickerRedetectRun
from finance.services import companies as company_services

pytestmark = pytest.mark.django_db


def lost_worker(task: str, *, row_update) -> TaskRun:
    """The ledger row of `task`, claimed by a worker that then vanished; `row_update()` does what it had done."""
    run = TaskRun.objects.get(task=task)
    assert run.state == "queued"
    assert core_services.task_run_claim(run_id=run.pk, celery_task_id=run.celery_task_id, worker="gone@host")
    row_update()
    return run


def sweep(django_capture_on_commit_callbacks) -> dict:
    with django_capture_on_commit_callbacks(execute=False):  # the re-sent messages are not the point here
        return core_services.task_runs_recover(stale_after=timedelta(0))


def test_a_material_whose_worker_was_lost_is_embedded_by_the_ledgers_rerun(
        course, teacher, tiny_encoder_spec, mlcore_home, django_capture_on_commit_callbacks):
    from education.tasks.tutor import embed_material

    material = material_services.material_create(course=course, user=teacher, title="Notes", kind="text",
                                                 text="Thesis statements state the essay's claim. " * 20)
    run = lost_worker("education.tutor_embed_material", row_update=lambda: CourseMaterial.objects.filter(
        pk=material.pk).update(state="processing", attempts=1, processing_since=timezone.now()))
    assert material_services.material_embed(material_id=material.pk) == "skipped"  # a stray delivery: no
    assert sweep(django_capture_on_commit_callbacks)["requeued"] == [run.pk]
    row = TaskRun.objects.get(pk=run.pk)
    # The re-sent message, as a worker would run it (in this process).
    assert embed_material.apply(args=[material.pk], kwargs={"run_id": run.pk},
                                task_id=row.celery_task_id).get() == "ready"
    material.refresh_from_db()
    assert (material.state, material.attempts, material.error) == ("ready", 2, "")
    assert all(chunk.embedding for chunk in material.chunks.all())
    assert TaskRun.objects.get(pk=run.pk).state == "done"


def test_a_material_the_ledger_gave_up_on_is_failed_for_the_teacher_to_retry(
        course, teacher, settings, django_capture_on_commit_callbacks):
    settings.PARLANCE_TASK_MAX_ATTEMPTS = 1
    material = material_services.material_create(course=course, user=teacher, title="Notes", kind="text",
                                                 text="Some course notes.")
    run = lost_worker("education.tutor_embed_material", row_update=lambda: CourseMaterial.objects.filter(
        pk=material.pk).update(state="processing", attempts=1, processing_since=timezone.now()))
    assert sweep(django_capture_on_commit_callbacks)["failed"] == [run.pk]
    material.refresh_from_db()
    assert (material.state, material.error) == (
        "failed", "The worker stopped 1 time while embedding this material; press Retry to embed it again.")
    assert material_services.material_retry(material=material)  # a new ledger run
    assert TaskRun.objects.filter(task="education.tutor_embed_material", state="queued").count() == 1


def _pending_explanation(course, teacher, session):
    from education.services import tutor
    from tests.education.conftest import TUTOR_CORPUS

    material_services.material_create(course=course, user=teacher, title="Thesis statements", kind="markdown",
                                      text=TUTOR_CORPUS["Thesis statements"])
    message = tutor.tutor_ask(session=session, question="What is a thesis statement?", explain=tutor.Explain.LATER)
    assert message.explanation_pending
    return message


def test_an_explanation_whose_worker_was_lost_is_written_by_the_ledgers_rerun(
        course, teacher, tutor_session, tutor_lm, django_capture_on_commit_callbacks):
    from education.tasks.tutor import explain_message

    message = _pending_explanation(course, teacher, tutor_session)
    # The lost worker was decoding: the message stays pending until an explanation is stored.
    run = lost_worker("education.tutor_explain", row_update=lambda: None)
    assert sweep(django_capture_on_commit_callbacks)["requeued"] == [run.pk]
    row = TaskRun.objects.get(pk=run.pk)
    assert explain_message.apply(args=[message.pk], kwargs={"run_id": run.pk},
                                 task_id=row.celery_task_id).get() == "written"
    message.refresh_from_db()
    assert not message.explanation_pending
    assert (TaskRun.objects.get(pk=run.pk).state, TaskRun.objects.get(pk=run.pk).attempts) == ("done", 2)


def test_an_explanation_the_ledger_gave_up_on_is_no_longer_awaited(
        course, teacher, tutor_session, tutor_lm, settings, django_capture_on_commit_callbacks):
    settings.PARLANCE_TASK_MAX_ATTEMPTS = 1
    message = _pending_explanation(course, teacher, tutor_session)
    run = lost_worker("education.tutor_explain", row_update=lambda: None)
    assert sweep(django_capture_on_commit_callbacks)["failed"] == [run.pk]
    message.refresh_from_db()
    assert (message.explanation_pending, message.explanation, message.state) == (False, "", "answered")


def test_a_calibration_the_ledger_gave_up_on_fails_and_frees_the_assignment(
        assignment, teacher, make_essay, settings, django_capture_on_commit_callbacks):
    settings.PARLANCE_TASK_MAX_ATTEMPTS = 1
    for score in (2, 4, 5):
        version = make_essay(assignment, f"An essay that deserves {score}.")
        Grade.objects.create(version=version, score=score, raw_score=score, confidence=0.5, teacher_score=score,
                             overridden_at=timezone.now())
    cal = calibration.calibration_start(assignment=assignment, user=teacher, finetune=False)
    run = lost_worker("education.calibrate",
                      row_update=lambda: Calibration.objects.filter(pk=cal.pk).update(state="running"))
    assert calibration.calibration_run(calibration_id=cal.pk) == "claimed elsewhere"  # a stray delivery: no
    with pytest.raises(grading.GradingError, match="already running"):
        calibration.calibration_start(assignment=assignment, user=teacher, finetune=False)
    assert sweep(django_capture_on_commit_callbacks)["failed"] == [run.pk]
    cal.refresh_from_db()
    assert cal.state == "failed" and cal.finished is not None
    assert cal.error == "The worker calibrating stopped 1 time; calibration was given up. Start it again."
    assert calibration.calibration_start(assignment=assignment, user=teacher, finetune=False).state == "queued"


def test_a_redetection_the_ledger_gave_up_on_fails_with_a_reason(companies, make_user, settings,
                                                                  django_capture_on_commit_callbacks):
    settings.PARLANCE_TASK_MAX_ATTEMPTS = 1
    redetect = company_services.redetect_start(company=companies["NRVB"], user=make_user(Role.ANALYST), days=3)
    run = lost_worker("finance.redetect_tickers", row_update=lambda: TickerRedetectRun.objects.filter(
        pk=redetect.pk).update(state="running"))
    assert TaskRun.objects.get(pk=run.pk).args == [redetect.pk]
    assert sweep(django_capture_on_commit_callbacks)["failed"] == [run.pk]
    redetect.refresh_from_db()
    assert (redetect.state, redetect.error) == (
        "failed", "The worker stopped 1 time during the re-detection; it was given up. Start it again.")
    assert redetect.finished_at is not None


def test_a_failing_give_up_hook_does_not_undo_the_runs_failure(settings, django_capture_on_commit_callbacks,
                                                                monkeypatch):
    settings.PARLANCE_TASK_MAX_ATTEMPTS = 1
    seen = []

    def broken(run):
        seen.append(run.state)
        raise RuntimeError("hook bug")

    monkeypatch.setitem(core_services._GIVE_UP_HOOKS, "faults.test_task", broken)
    with django_capture_on_commit_callbacks(execute=False):
        core_services.task_run_enqueue(task="faults.test_task", args=[1])
    run = lost_worker("faults.test_task", row_update=lambda: None)
    assert sweep(django_capture_on_commit_callbacks)["failed"] == [run.pk]
    assert seen == ["failed"] and TaskRun.objects.get(pk=run.pk).state == "failed"


def test_a_calibration_whose_finish_poll_was_lost_is_finished_by_the_sweep(assignment):
    """The poll (education.calibration_finish) is a message too: a restarted broker loses it. The sweep finishes
    calibrations whose fine-tune ended long ago, and leaves alone those whose poll may still be on its way."""
    from mlcore.models import Dataset, Task, TrainingJob

    dataset = Dataset.objects.create(name="grades", kind="regression", source_name="grades.jsonl", path="x.jsonl")

    def training(**job) -> Calibration:
        made = TrainingJob.objects.create(task=Task.ESSAY_SCORE, dataset=dataset, **job) if job else None
        return Calibration.objects.create(assignment=assignment, state=Calibration.State.TRAINING, training_job=made)

    hour_ago, minute_ago = timezone.now() - timedelta(hours=1), timezone.now() - timedelta(minutes=1)
    running = training(state="running")
    assert calibration.calibrations_recover() == []  # the fine-tune is still running: its poll waits for it
    TrainingJob.objects.filter(pk=running.training_job_id).update(state="failed", error="out of memory",
                                                                  finished_at=minute_ago)
    assert calibration.calibrations_recover() == []  # just ended: the poll may still come
    TrainingJob.objects.filter(pk=running.training_job_id).update(finished_at=hour_ago)
    assert calibration.calibrations_recover() == [running.pk]
    running.refresh_from_db()
    assert running.state == "done" and running.finished is not None
    assert running.scorer_reason == ("The encoder fine-tune failed (out of memory); ridge regression over "
                                     "embeddings is used.")

    orphan = training()  # its job was deleted
    assert calibration.calibrations_recover() == [orphan.pk]
    orphan.refresh_from_db()
    assert (orphan.state, orphan.scorer_reason) == ("done", "The fine-tune job was deleted; ridge regression is used.")
    assert calibration.calibrations_recover() == []  # nothing left; done ones are not finished twice

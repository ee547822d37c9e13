"""Essay grading on the task ledger: a worker killed mid-grading, a grading message lost from the broker."""

from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from django.test import Client
from django.urls import reverse

from core import services as core_services
from core.models import TaskRun
from education.models import EssayVersion, Grade
from education.services import grading
from tests.faults.conftest import finished, kill_9, lock_waiters, running_on
from tests.workers import purge_app_queues, wait_for, worker_database_url

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ESSAY = ("Schools should not ban phones in class. First, phones help students look up facts quickly. "
         "Second, teachers can use them for short quizzes. However, rules are needed so that phones do not "
         "distract anyone. In conclusion, a clear policy works better than a ban.")


@contextmanager
def grade_being_written(version_id: int):
    """An uncommitted Grade row of the version, from another connection, until the block ends (rolled back).

    A worker writing the version's grade waits on the unique index for it: grading is held after the version
    was claimed and embedded, in the transaction that stores the grade.
    """
    with psycopg.connect(worker_database_url()) as conn:
        conn.execute(
            "INSERT INTO education_grade (version_id, score, raw_score, trait_scores, feedback, statistics, scorer, "
            "confidence, needs_review, review_reasons, teacher_reason, created, updated) "
            "VALUES (%s, 1, 1.0, '{}', '[]', '{}', 'baseline', 0.5, false, '[]', '', now(), now())", [version_id])
        try:
            yield
        finally:
            conn.rollback()


def submitted(assignment, student) -> tuple[EssayVersion, TaskRun]:
    version = grading.essay_submit(assignment=assignment, student=student, text=ESSAY)
    run = TaskRun.objects.get(task="education.grade_version")
    assert (run.state, run.args) == ("queued", [version.pk])  # recorded with the version, in its transaction
    return version, run


def kill_worker_mid_grading(start_worker, version: EssayVersion) -> str:
    """Start a worker, let it block storing the version's grade, kill -9 it; returns its hostname."""
    with grade_being_written(version.pk):
        with start_worker() as (proc, hostname):
            wait_for(lambda: running_on("education.grade_version", hostname) and lock_waiters(), timeout=120,
                     what="grading blocked writing the grade")
            kill_9(proc)
    return hostname


def test_grading_killed_mid_write_is_rerun_by_the_sweep_and_graded_once(start_worker, assignment, student,
                                                                       embedder):
    version, run = submitted(assignment, student)
    kill_worker_mid_grading(start_worker, version)
    version.refresh_from_db()
    # Nobody has told the database: without the ledger this stays "running" for the broker's 7 h visibility timeout.
    assert (version.grading_state, version.grading_attempts) == ("running", 1)
    assert TaskRun.objects.get(pk=run.pk).state == "running"
    assert not Grade.objects.exists()

    assert core_services.task_runs_recover(stale_after=timedelta(0)) == {
        "requeued": [run.pk], "failed": [], "resent": []}
    with start_worker() as (_, hostname):
        row = finished(run)
    assert (row.state, row.attempts, row.worker, row.error) == ("done", 2, hostname, "")
    version.refresh_from_db()
    assert (version.grading_state, version.grading_attempts, version.grading_error) == ("done", 2, "")
    grade = Grade.objects.get()  # exactly one
    assert grade.version_id == version.pk and assignment.score_min <= grade.score <= assignment.score_max


def test_grading_whose_worker_is_lost_on_every_attempt_fails_with_a_reason_the_student_sees(
        start_worker, assignment, student, embedder, settings):
    settings.PARLANCE_TASK_MAX_ATTEMPTS = 1
    version, run = submitted(assignment, student)
    assert run.max_attempts == 1
    kill_worker_mid_grading(start_worker, version)

    assert core_services.task_runs_recover(stale_after=timedelta(0)) == {
        "requeued": [], "failed": [run.pk], "resent": []}
    assert TaskRun.objects.get(pk=run.pk).state == "failed"
    version.refresh_from_db()
    reason = "Scoring was given up: the worker scoring this version stopped 1 time."
    assert (version.grading_state, version.grading_attempts, version.grading_error) == ("failed", 1, reason)
    assert not Grade.objects.exists()

    client = Client()
    client.force_login(student)
    page = client.get(reverse("education:essay", args=[version.essay_id])).content.decode()
    assert f"Scoring this version failed. {reason} Your teacher has been told" in page
    # The broker handing the old message out again (after its visibility timeout) grades nothing.
    from education.tasks.grading import grade_version

    row = TaskRun.objects.get(pk=run.pk)
    assert grade_version.apply(args=[version.pk], kwargs={"run_id": run.pk}, task_id=row.celery_task_id).get() is None
    assert not Grade.objects.exists() and EssayVersion.objects.get(pk=version.pk).grading_state == "failed"


def test_a_grading_message_purged_from_the_broker_is_resent_by_the_sweep_and_graded(
        start_worker, assignment, student, embedder):
    """Purging the queue stands in for the broker losing the message (test_broker_restart.py restarts Redis)."""
    version, run = submitted(assignment, student)
    assert core_services.task_messages_waiting("education.grade_version") == 1  # sent after commit
    purge_app_queues()
    assert core_services.task_runs_recover(queued_after=timedelta(minutes=5))["resent"] == []  # not waited enough
    assert core_services.task_runs_recover(queued_after=timedelta(0))["resent"] == [run.pk]
    assert core_services.task_messages_waiting("education.grade_version") == 1
    with start_worker():
        row = finished(run)
    assert (row.state, row.attempts) == ("done", 1)
    version.refresh_from_db()
    assert (version.grading_state, version.grading_attempts) == ("done", 1)
    assert Grade.objects.filter(version=version).count() == 1

"""Celery tasks of essay grading and calibration: thin wrappers over the services, on the `ml` queue.

Grading and calibration run under the task ledger (core.tasks.run_recorded): a worker killed mid-task is noticed
by the beat's sweep and the run is done again (`rerun=True` lets it take over the row the lost worker left
running); when the ledger gives up, the hooks registered below mark the version or calibration failed.
"""

from celery import shared_task

from core.services import task_run_on_give_up
from core.tasks import run_recorded
from education.services import calibration, grading

FINISH_POLL_SECONDS = 5
FINISH_MAX_POLLS = 6 * 60 * 60 // FINISH_POLL_SECONDS  # a fine-tune may run for hours on a CPU worker


@shared_task(name=grading.GRADE_TASK, bind=True, acks_late=True, max_retries=0)
def grade_version(self, version_id: int, run_id: int | None = None) -> int | None:
    """Score one essay version (idempotent: the ledger run and the version are claimed, and it has one grade)."""

    def work():
        grade = grading.version_grade(version_id=version_id, rerun=True)
        return grade.pk if grade else None

    return run_recorded(self, run_id=run_id, work=work)


@shared_task(name=calibration.CALIBRATE_TASK, bind=True, acks_late=True, max_retries=0)
def calibrate(self, calibration_id: int, run_id: int | None = None) -> str | None:
    return run_recorded(self, run_id=run_id,
                        work=lambda: calibration.calibration_run(calibration_id=calibration_id, rerun=True))


@shared_task(name="education.calibration_finish", bind=True, acks_late=True,
             max_retries=FINISH_MAX_POLLS)
def calibration_finish(self, calibration_id: int) -> str:
    """Wait for the calibration's fine-tune job without holding a worker: re-check every few seconds."""
    state = calibration.calibration_finish(calibration_id=calibration_id)
    if state == "waiting":
        raise self.retry(countdown=FINISH_POLL_SECONDS)
    return state


@shared_task(name="education.calibrations_recover", acks_late=True, max_retries=0)
def calibrations_recover() -> list[int]:
    """Beat: finish calibrations whose polling task was lost after their fine-tune ended."""
    return calibration.calibrations_recover()


task_run_on_give_up(grading.GRADE_TASK, lambda run: grading.version_grading_gave_up(
    version_id=run.args[0], attempts=run.attempts))
task_run_on_give_up(calibration.CALIBRATE_TASK, lambda run: calibration.calibration_gave_up(
    calibration_id=run.args[0], attempts=run.attempts))

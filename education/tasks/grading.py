"""Celery tasks of essay grading and calibration: thin wrappers over the services, on the `ml` queue."""

from celery import shared_task

from education.services import calibration, grading

FINISH_POLL_SECONDS = 5
FINISH_MAX_POLLS = 6 * 60 * 60 // FINISH_POLL_SECONDS  # a fine-tune may run for hours on a CPU worker


@shared_task(name="education.grade_version", acks_late=True, autoretry_for=(ConnectionError,),
             max_retries=3, retry_backoff=True)
def grade_version(version_id: int) -> int | None:
    """Score one essay version (idempotent: the version is claimed, and it has one grade)."""
    grade = grading.version_grade(version_id=version_id)
    return grade.pk if grade else None


@shared_task(name="education.calibrate", acks_late=True, max_retries=0)
def calibrate(calibration_id: int) -> str:
    return calibration.calibration_run(calibration_id=calibration_id)


@shared_task(name="education.calibration_finish", bind=True, acks_late=True,
             max_retries=FINISH_MAX_POLLS)
def calibration_finish(self, calibration_id: int) -> str:
    """Wait for the calibration's fine-tune job without holding a worker: re-check every few seconds."""
    state = calibration.calibration_finish(calibration_id=calibration_id)
    if state == "waiting":
        raise self.retry(countdown=FINISH_POLL_SECONDS)
    return state

"""Celery tasks of entertainment: thin wrappers over generation.py, on the ml queue."""

from celery import shared_task

from entertainment import generation


@shared_task(name="entertainment.generate", acks_late=True, max_retries=0)
def generate(job_id: int) -> str:
    """Run one generation job; a redelivered message finds the job claimed and does nothing."""
    return generation.generation_run(job_id=job_id)


@shared_task(name="entertainment.jobs_recover", acks_late=True, max_retries=0)
def jobs_recover() -> dict:
    """Fail generations a lost worker left running (beat: every minute); returns the ids it failed."""
    return generation.generation_jobs_recover()

"""Celery tasks of mlcore: thin wrappers over services, routed to the `ml` queue by name."""

from celery import shared_task

from mlcore import services


@shared_task(name="mlcore.finetune_run", bind=True, acks_late=True, max_retries=0)
def finetune_run(self, job_id: int) -> str:
    return services.finetune_run(job_id=job_id, worker=self.request.hostname or "")


@shared_task(name="mlcore.jobs_recover", acks_late=True, max_retries=0)
def jobs_recover() -> dict:
    return services.jobs_recover()

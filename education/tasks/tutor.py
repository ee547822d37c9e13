"""Celery tasks of the course-material tutor."""

from celery import shared_task

from education.services.material import material_embed


@shared_task(name="education.tutor_embed_material", acks_late=True, autoretry_for=(ConnectionError,),
             max_retries=3, retry_backoff=True)
def embed_material(material_id: int) -> str:
    """Embed a material's passages (claimed pending -> processing, so a redelivery does nothing twice)."""
    return material_embed(material_id=material_id)

"""Celery tasks of the course-material tutor."""

from celery import shared_task

from education.services.material import material_embed, materials_recover


@shared_task(name="education.tutor_embed_material", acks_late=True, autoretry_for=(ConnectionError,),
             max_retries=3, retry_backoff=True)
def embed_material(material_id: int) -> str:
    """Embed a material's passages (claimed pending -> processing, so a redelivery does nothing twice)."""
    return material_embed(material_id=material_id)


@shared_task(name="education.materials_recover", acks_late=True, max_retries=0)
def recover_materials() -> list[int]:
    """Fail materials a lost worker left "processing" (beat), so teachers can retry them."""
    return materials_recover()

"""Celery tasks of the course-material tutor."""

from celery import shared_task

from core.services import task_run_on_give_up
from core.tasks import run_recorded
from education.services.material import (
    EMBED_TASK,
    SENTENCE_VECTORS_TASK,
    material_embed,
    material_embed_gave_up,
    materials_recover,
    sentence_vectors_fill,
)
from education.services.tutor import EXPLAIN_TASK, explanation_abandon, tutor_explain


@shared_task(name=EMBED_TASK, bind=True, acks_late=True, max_retries=0)
def embed_material(self, material_id: int, run_id: int | None = None) -> str | None:
    """Embed a material's passages under the task ledger (a lost worker's run is done again, taking the row over)."""
    return run_recorded(self, run_id=run_id, work=lambda: material_embed(material_id=material_id, rerun=True))


@shared_task(name=SENTENCE_VECTORS_TASK, bind=True, acks_late=True, max_retries=0)
def fill_sentence_vectors(self, material_id: int, run_id: int | None = None) -> int | None:
    """Store the sentence vectors of a material embedded before they were kept, under the task ledger."""
    return run_recorded(self, run_id=run_id, work=lambda: sentence_vectors_fill(material_id=material_id))


@shared_task(name=EXPLAIN_TASK, bind=True, acks_late=True, max_retries=0)
def explain_message(self, message_id: int, run_id: int | None = None) -> str | None:
    """Write a tutor answer's pending explanation under the task ledger (a lost worker's run is done again)."""
    return run_recorded(self, run_id=run_id, work=lambda: tutor_explain(message_id=message_id))


@shared_task(name="education.materials_recover", acks_late=True, max_retries=0)
def recover_materials() -> list[int]:
    """Fail materials a lost worker left "processing" (beat), so teachers can retry them."""
    return materials_recover()


task_run_on_give_up(EMBED_TASK, lambda run: material_embed_gave_up(material_id=run.args[0], attempts=run.attempts))
task_run_on_give_up(EXPLAIN_TASK, lambda run: explanation_abandon(message_id=run.args[0]))

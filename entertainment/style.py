"""Style fine-tuning: a writer's own corpus trains a LoRA adapter for the project's stories (in mlcore, on
the ml queue); once it has trained, the writer chooses whether stories generate through it."""

from django.db import transaction

from entertainment.models import Project
from entertainment.services import StudioError
from mlcore import api as ml

MAX_CORPUS_BYTES = 5 * 1024 * 1024
DEFAULT_EPOCHS = 1


def style_train_start(*, project: Project, user, data: bytes, filename: str, epochs: int = DEFAULT_EPOCHS):
    """Clean and deduplicate the corpus (mlcore.data) and queue a LoRA fine-tune scoped to the project."""
    if project.style_job_id and project.style_job.state in ("queued", "running"):
        raise StudioError("A style fine-tune is already running for this world; wait for it or cancel it.")
    if not data.strip():
        raise StudioError("The corpus is empty.")
    if len(data) > MAX_CORPUS_BYTES:
        raise StudioError(f"The corpus is {len(data) // 1024} KB; the limit is {MAX_CORPUS_BYTES // 1024} KB.")
    try:
        with transaction.atomic():
            dataset = ml.dataset_create(name=f"{project.title}: style corpus ({filename})"[:200], kind="text",
                                        data=data, filename=filename, fmt="text", user=user)
            job = ml.start_finetune(ml.Task.STORY, dataset, scope=project.scope, user=user,
                                    epochs=min(max(int(epochs), 1), 5))
            project.style_job = job
            project.use_style = False
            project.save(update_fields=["style_job", "use_style"])
    except ValueError as exc:  # mlcore's DataError and RegistryError: the message says what is wrong
        raise StudioError(str(exc)) from exc
    return job


def style_use(*, project: Project, use: bool) -> Project:
    """Generate stories through the trained adapter (activating it for the project's scope), or stop."""
    if use:
        job = project.style_job
        if job is None or job.state != "succeeded" or job.result_version is None:
            raise StudioError("There is no trained style to use yet.")
        if job.result_version.state != "active":
            ml.activate(job.result_version)
    project.use_style = use
    project.save(update_fields=["use_style"])
    return project


def style_status(project: Project) -> dict | None:
    job = project.style_job
    if job is None:
        return None
    metrics = job.result_version.metrics if job.result_version_id else {}
    return {
        "state": job.state, "active": job.state in ("queued", "running"), "progress": round(job.progress, 1),
        "error": job.error, "perplexity_before": metrics.get("perplexity_before"),
        "perplexity_after": metrics.get("perplexity"), "in_use": project.use_style,
    }

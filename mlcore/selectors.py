"""Reads of the model registry."""

from django.db.models import QuerySet

from mlcore.models import Dataset, ModelVersion, Task, TrainingJob


class NoActiveVersion(LookupError):
    """The task has no active model version; the message says how to get one."""


def active_version(*, task: str, scope: str = "") -> ModelVersion:
    version = ModelVersion.objects.filter(task=task, scope=scope, state=ModelVersion.State.ACTIVE).first()
    if version is None:
        where = f" for {scope}" if scope else ""
        raise NoActiveVersion(
            f"No active model for {Task(task).label}{where}. An operator trains or activates one on the Models page."
        )
    return version


def versions_for(*, task: str, scope: str | None = None) -> QuerySet[ModelVersion]:
    qs = ModelVersion.objects.filter(task=task)
    return qs if scope is None else qs.filter(scope=scope)


def task_overview() -> list[dict]:
    """Each task with its active versions (one per scope) and counts, for the operator page."""
    active = {}
    for version in ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE):
        active.setdefault(version.task, []).append(version)
    counts = {}
    for task_name in ModelVersion.objects.values_list("task", flat=True):
        counts[task_name] = counts.get(task_name, 0) + 1
    return [
        {"task": task, "label": task.label, "active": active.get(task.value, []), "versions": counts.get(task.value, 0)}
        for task in Task
    ]


def jobs_list(*, state: str | None = None) -> QuerySet[TrainingJob]:
    qs = TrainingJob.objects.select_related("dataset", "result_version", "created_by")
    return qs.filter(state=state) if state else qs


def datasets_list() -> QuerySet[Dataset]:
    return Dataset.objects.select_related("created_by")


def dataset_rows(*, dataset: Dataset, split: str | None = None) -> list[dict]:
    """The cleaned rows of a dataset (`{"text", "label"|"target", "split"}`), optionally one split."""
    import json  # noqa: PLC0415

    from mlcore.specs import artifact_dir  # noqa: PLC0415

    rows = []
    with open(artifact_dir(dataset.path), encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if split is None or row["split"] == split:
                rows.append(row)
    return rows

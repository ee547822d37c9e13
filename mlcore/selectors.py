"""Reads of the model registry."""

import math

from django.db.models import QuerySet

from mlcore.models import TASK_FAMILIES, Dataset, Family, ModelVersion, Task, TrainingJob


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


# --- operator pages ----------------------------------------------------------------------------

# The metrics an operator reads first, per family; the first one is the one the bar chart compares.
HEADLINE_METRICS = {
    Family.CLASSIFIER: ("macro_f1", "accuracy"),
    Family.REGRESSOR: ("qwk", "rmse"),
}
# The families mlcore can fine-tune now (encoder heads); the others serve their packaged base model.
TRAINABLE_FAMILIES = (Family.CLASSIFIER, Family.REGRESSOR)
# Numbers kept in `metrics` that describe the run rather than measure the model.
_NOT_METRICS = frozenset({"dataset_id"})
METRIC_LABELS = {
    "accuracy": "accuracy", "macro_f1": "macro-F1", "qwk": "QWK", "rmse": "RMSE", "pearson": "Pearson r",
    "n": "rows measured", "epochs_run": "epochs run", "train_loss": "training loss", "seconds": "seconds",
}
# Chart trace colours: the design system's accent first, then colours that stay apart from it.
_COLORWAY = ["#2458c6", "#e07b00", "#1f7a4d", "#b42318"]


def metric_label(key: str) -> str:
    """A metric's name for people: "val_macro_f1" reads "val. macro-F1"."""
    if key.startswith("val_"):
        return "val. " + metric_label(key.removeprefix("val_"))
    return METRIC_LABELS.get(key, key.replace("_", " "))


def trainable_tasks() -> list[Task]:
    """The tasks an operator can fine-tune now: those with an encoder classifier or regressor."""
    return [task for task in Task if TASK_FAMILIES[task] in TRAINABLE_FAMILIES]


def headline_metrics(version: ModelVersion) -> list[tuple[str, float]]:
    """The family's headline metrics that `version` has, as (name, value) pairs."""
    names = HEADLINE_METRICS.get(version.family, ())
    return [(name, version.metrics[name]) for name in names if _is_number(version.metrics.get(name))]


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def jobs_overview(*, state: str | None = None) -> QuerySet[TrainingJob]:
    """Jobs for list pages, without the large history, log and rejected-rows columns."""
    return jobs_list(state=state).defer("history", "log_tail", "dataset__rejected")


def datasets_overview() -> QuerySet[Dataset]:
    """Datasets for list pages and choices, without their rejected rows."""
    return datasets_list().defer("rejected")


def operator_overview(*, recent_jobs: int = 5) -> dict:
    """The operator's start page: each task with its active versions' headline metrics, and recent jobs."""
    tasks = task_overview()
    for entry in tasks:
        entry["family"] = TASK_FAMILIES[entry["task"]]
        entry["trainable"] = entry["family"] in TRAINABLE_FAMILIES
        entry["active"] = [
            {"version": v, "headline": [(metric_label(name), value) for name, value in headline_metrics(v)]}
            for v in entry["active"]
        ]
    return {
        "tasks": tasks,
        "recent_jobs": list(jobs_overview()[:recent_jobs]),
        "dataset_count": Dataset.objects.count(),
    }


def task_versions(*, task: str) -> dict:
    """Every version of `task` with the union of their numeric metrics, and a bar chart of the main one.

    Each row carries the dataset and split its metrics were measured on, and `comparable` says whether
    all measured versions share them.
    """
    task = Task(task)
    family = TASK_FAMILIES[task]
    versions = list(versions_for(task=task))
    keys: dict[str, None] = dict.fromkeys(HEADLINE_METRICS.get(family, ()))
    for version in versions:
        keys.update(dict.fromkeys(
            sorted(k for k, v in version.metrics.items() if _is_number(v) and k not in _NOT_METRICS)
        ))
    present = [k for k in keys if any(_is_number(v.metrics.get(k)) for v in versions)]
    rows = []
    measured_on = set()
    for version in versions:
        values = [version.metrics.get(k) if _is_number(version.metrics.get(k)) else None for k in present]
        dataset, split = version.metrics.get("dataset"), version.metrics.get("split")
        if any(v is not None for v in values):
            measured_on.add((dataset, split))
        rows.append({"version": version, "values": values, "dataset": dataset, "split": split})
    return {
        "task": task,
        "label": task.label,
        "family": family,
        "trainable": family in TRAINABLE_FAMILIES,
        "rows": rows,
        "metric_keys": present,
        "metric_labels": [metric_label(key) for key in present],
        "comparable": len(measured_on) <= 1,
        "chart": _versions_chart(versions, HEADLINE_METRICS.get(family, ())),
    }


def _version_label(version: ModelVersion) -> str:
    scope = f" [{version.scope}]" if version.scope else ""
    return f"v{version.pk}{scope}"


def _versions_chart(versions: list[ModelVersion], names: tuple[str, ...]) -> dict | None:
    """A Plotly grouped bar chart of the headline metrics per version, or None when no version has any."""
    measured = [v for v in reversed(versions) if any(_is_number(v.metrics.get(n)) for n in names)]
    if not measured:
        return None
    x = [_version_label(v) for v in measured]
    data = [
        {"type": "bar", "name": metric_label(name), "x": x, "y": [v.metrics.get(name) for v in measured],
         "hovertemplate": f"%{{x}}<br>{metric_label(name)}: %{{y:.4f}}<extra></extra>"}
        for name in names
        if any(_is_number(v.metrics.get(name)) for v in measured)
    ]
    layout = {
        "barmode": "group",
        "colorway": _COLORWAY,
        "margin": {"l": 48, "r": 16, "t": 40, "b": 40},
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        "xaxis": {"type": "category", "automargin": True},
        "yaxis": {"rangemode": "tozero", "automargin": True},
    }
    return {"data": data, "layout": layout}


def job_progress(*, job: TrainingJob) -> dict:
    """What the live job page shows and polls: state, progress, log, epochs and the loss chart."""
    epochs = [entry for entry in job.history if "train_loss" in entry]
    # PostgreSQL's jsonb does not keep key order, so the columns get a fixed one: training first, then
    # validation metrics by name.
    found = {k for entry in epochs for k in entry if k != "epoch"}
    leading = [k for k in ("train_loss", "seconds") if k in found]
    epoch_keys = leading + sorted(found - set(leading))
    return {
        "id": job.pk,
        "state": job.state,
        "active": job.is_active,
        "progress": round(job.progress, 1),
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "cancel_requested": job.cancel_requested,
        "worker": job.worker,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "heartbeat_at": job.heartbeat_at.isoformat() if job.heartbeat_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "log_tail": job.log_tail,
        "error": job.error,
        "epochs": [{"epoch": e.get("epoch"), "values": [e.get(k) for k in epoch_keys]} for e in epochs],
        "epoch_keys": epoch_keys,
        "epoch_labels": [metric_label(key) for key in epoch_keys],
        "result_version_id": job.result_version_id,
        "chart": _job_chart(job.history, TASK_FAMILIES[Task(job.task)]),
    }


CHART_MAX_POINTS = 400  # the loss line the job page polls every 2 s, however many steps a long job reports


def _thinned(steps: list[int], losses: list[float]) -> tuple[list[int], list[float]]:
    """At most CHART_MAX_POINTS points: runs of consecutive reports averaged, each drawn at its last step."""
    if len(steps) <= CHART_MAX_POINTS:
        return steps, losses
    size = math.ceil(len(steps) / CHART_MAX_POINTS)
    starts = range(0, len(steps), size)
    return ([steps[min(i + size, len(steps)) - 1] for i in starts],
            [sum(losses[i : i + size]) / len(losses[i : i + size]) for i in starts])


def _job_chart(history: list[dict], family: str) -> dict | None:
    """Training loss per step, and the validation score per epoch on a second axis at the epoch's last step."""
    steps, losses, epoch_x, epoch_y, epoch_text = [], [], [], [], []
    metric = "val_" + HEADLINE_METRICS.get(family, ("macro_f1",))[0]
    last_step = 0
    for entry in history:
        if "step" in entry and "loss" in entry:
            last_step = entry["step"]
            steps.append(entry["step"])
            losses.append(entry["loss"])
        elif "train_loss" in entry and _is_number(entry.get(metric)):
            epoch_x.append(last_step)
            epoch_y.append(entry[metric])
            epoch_text.append(f"epoch {entry.get('epoch', len(epoch_x))}")
    if not steps and not epoch_x:
        return None
    label = metric_label(metric)
    steps, losses = _thinned(steps, losses)
    data = [{"type": "scatter", "mode": "lines", "name": "training loss", "x": steps, "y": losses,
             "hovertemplate": "step %{x}<br>loss %{y:.4f}<extra></extra>"}]
    layout = {
        "colorway": _COLORWAY,
        "margin": {"l": 48, "r": 48, "t": 40, "b": 40},
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        "xaxis": {"title": {"text": "step"}, "rangemode": "tozero", "automargin": True},
        "yaxis": {"title": {"text": "loss"}, "rangemode": "tozero", "automargin": True},
    }
    if epoch_x:
        data.append({"type": "scatter", "mode": "lines+markers", "name": label, "x": epoch_x, "y": epoch_y,
                     "yaxis": "y2", "text": epoch_text, "marker": {"size": 8},
                     "hovertemplate": "%{text}<br>" + label + " %{y:.4f}<extra></extra>"})
        # Macro-F1 and QWK are at most 1 (QWK may dip below 0): a fixed top keeps early epochs in proportion.
        layout["yaxis2"] = {"title": {"text": label}, "overlaying": "y", "side": "right", "showgrid": False,
                            "zeroline": False, "range": [min(0.0, *epoch_y), 1.0], "dtick": 0.2, "tickformat": ".1f",
                            "automargin": True}
    return {"data": data, "layout": layout}


def dataset_rejected(*, dataset: Dataset, limit: int | None = None) -> list[dict]:
    """The rows an upload refused (`{line, reason, text}`) in file order, the first `limit` of them when given."""
    rows = sorted(dataset.rejected, key=lambda row: row.get("line") or 0)
    return rows if limit is None else rows[:limit]

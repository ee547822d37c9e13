"""The model registry: datasets, model versions (at most one active per task) and training jobs."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Task(models.TextChoices):
    """The stable task names the apps ask mlcore for."""

    FINANCE_SENTIMENT = "finance.sentiment", "Finance: news sentiment (3 classes)"
    ESSAY_SCORE = "education.essay_score", "Education: essay score (regression, per assignment)"
    EMBED = "education.embed", "Education: sentence embeddings"
    TUTOR = "education.tutor", "Education: tutor answers (generation)"
    STORY = "entertainment.story", "Entertainment: stories (generation)"
    DIALOGUE = "entertainment.dialogue", "Entertainment: NPC dialogue (generation)"


class Family(models.TextChoices):
    CLASSIFIER = "classifier", "Encoder classifier"
    REGRESSOR = "regressor", "Encoder regressor"
    EMBEDDER = "embedder", "Sentence embedder"
    CAUSAL_LM = "causal_lm", "Causal language model"
    LORA_ADAPTER = "lora_adapter", "LoRA adapter on a causal LM"


TASK_FAMILIES = {
    Task.FINANCE_SENTIMENT: Family.CLASSIFIER,
    Task.ESSAY_SCORE: Family.REGRESSOR,
    Task.EMBED: Family.EMBEDDER,
    Task.TUTOR: Family.CAUSAL_LM,
    Task.STORY: Family.CAUSAL_LM,
    Task.DIALOGUE: Family.CAUSAL_LM,
}


class Dataset(models.Model):
    """An uploaded training or evaluation set, cleaned and deduplicated by mlcore.data."""

    class Kind(models.TextChoices):
        CLASSIFICATION = "classification", "Text with a label"
        REGRESSION = "regression", "Text with a number"
        TEXT = "text", "Plain text (language modelling)"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    source_name = models.CharField(max_length=255, help_text="The uploaded file's name or the path read")
    path = models.CharField(max_length=500, help_text="Cleaned rows (JSONL), relative to MLCORE_HOME")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    rows_read = models.PositiveIntegerField(default=0)
    rows_kept = models.PositiveIntegerField(default=0)
    rows_rejected = models.PositiveIntegerField(default=0)
    exact_duplicates = models.PositiveIntegerField(default=0)
    near_duplicates = models.PositiveIntegerField(default=0)
    split_counts = models.JSONField(default=dict, help_text='{"train": n, "validation": n, "test": n}')
    labels = models.JSONField(default=list, blank=True)
    rejected = models.JSONField(default=list, blank=True, help_text="[{line, reason, text}] for the rows refused")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.rows_kept} rows)"


class ModelVersion(models.Model):
    class State(models.TextChoices):
        TRAINING = "training"
        READY = "ready"
        ACTIVE = "active"
        FAILED = "failed"
        ARCHIVED = "archived"

    task = models.CharField(max_length=40, choices=Task.choices, db_index=True)
    # A task may be split by scope, e.g. one essay scorer per assignment ("assignment:12").
    scope = models.CharField(max_length=100, blank=True, default="")
    family = models.CharField(max_length=20, choices=Family.choices)
    name = models.CharField(max_length=200, blank=True)
    base_spec = models.CharField(max_length=300, help_text="package:minilm, package:smollm2, a path, or hf:<name>")
    artifact_path = models.CharField(
        max_length=500, blank=True, help_text="Relative to MLCORE_HOME; empty means the base model as it is"
    )
    label_map = models.JSONField(default=list, blank=True, help_text="Class labels in output order")
    metrics = models.JSONField(default=dict, blank=True, help_text="{dataset, split, accuracy, macro_f1, ...}")
    state = models.CharField(max_length=10, choices=State.choices, default=State.READY, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["task", "scope", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["task", "scope"], condition=Q(state="active"), name="mlcore_one_active_version_per_task"
            ),
        ]

    def __str__(self):
        scope = f" [{self.scope}]" if self.scope else ""
        return f"{self.task}{scope} v{self.pk} ({self.state})"


class TrainingJob(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE_STATES = (State.QUEUED, State.RUNNING)

    task = models.CharField(max_length=40, choices=Task.choices, db_index=True)
    scope = models.CharField(max_length=100, blank=True, default="")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="jobs")
    base_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The version training starts from; empty means the task's packaged base model",
    )
    params = models.JSONField(default=dict, help_text="Hyper-parameters")
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED, db_index=True)
    progress = models.FloatField(default=0.0, help_text="0 to 100")
    history = models.JSONField(default=list, blank=True, help_text="[{step, epoch, loss} or {epoch, val_*}]")
    log_tail = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    cancel_requested = models.BooleanField(default=False)
    checkpoint_path = models.CharField(max_length=500, blank=True, default="")
    celery_task_id = models.CharField(max_length=255, blank=True, default="")
    worker = models.CharField(max_length=255, blank=True, default="")
    result_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_jobs"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=100), name="mlcore_job_progress_0_100"
            ),
        ]

    def __str__(self):
        return f"job {self.pk} {self.task} ({self.state}, {self.progress:.0f}%)"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES

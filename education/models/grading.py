"""Essay grading: assignments with rubrics, essays and their versions, grades, overrides and calibrations."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from education.models.courses import Course


class Assignment(models.Model):
    """An essay prompt in a course, with the rubric its essays are scored against.

    `rubric` is a list of criteria: `{"name", "description", "lines": [{"score": int, "text": str}]}`;
    `traits` names the trait scores each grade carries (e.g. "Ideas", "Organization", "Conventions").
    """

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="assignments")
    title = models.CharField(max_length=200)
    prompt = models.TextField()
    rubric = models.JSONField(default=list, blank=True)
    score_min = models.SmallIntegerField(default=1)
    score_max = models.SmallIntegerField(default=6)
    traits = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["course", "created", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["course", "title"], name="education_assignment_unique_title"),
            models.CheckConstraint(
                condition=Q(score_min__gte=0) & Q(score_max__gt=F("score_min")) & Q(score_max__lte=100),
                name="education_assignment_score_range_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def scope(self) -> str:
        """The mlcore scope of this assignment's essay scorer."""
        return f"assignment:{self.pk}"


class Essay(models.Model):
    """One student's essay for one assignment; each (re)submission is an EssayVersion."""

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="essays")
    student = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="essays")
    text = models.TextField(help_text="The text of the latest version")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["assignment", "student__username"]
        constraints = [
            models.UniqueConstraint(fields=["assignment", "student"], name="education_essay_one_per_student"),
        ]

    def __str__(self) -> str:
        return f"{self.student} on {self.assignment}"


class EssayVersion(models.Model):
    class GradingState(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    essay = models.ForeignKey(Essay, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    text = models.TextField()
    submitted = models.DateTimeField(auto_now_add=True)
    embedding = models.JSONField(null=True, blank=True, help_text="Unit-length sentence embedding of the text")
    middle_embedding = models.JSONField(
        null=True, blank=True, help_text="The embedding model's middle layer, mean-pooled (unit length): the scorer "
        "reads it beside the embedding")
    lm_embedding = models.JSONField(
        null=True, blank=True, help_text="A language model's middle layer, mean-pooled over the text's first lm_tokens "
        "tokens (unit length): the scorer reads it beside the embeddings")
    lm_version = models.ForeignKey(
        "mlcore.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The language model that read lm_embedding")
    lm_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="How many tokens lm_embedding read at most")
    grading_state = models.CharField(
        max_length=10, choices=GradingState.choices, default=GradingState.PENDING, db_index=True
    )
    grading_attempts = models.PositiveSmallIntegerField(default=0)
    grading_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["essay", "number"]
        constraints = [
            models.UniqueConstraint(fields=["essay", "number"], name="education_essayversion_unique_number"),
            models.CheckConstraint(condition=Q(number__gte=1), name="education_essayversion_number_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.essay} v{self.number}"


class Calibration(models.Model):
    """One fit of an assignment's scorer to the teacher's grades, with its cross-validated agreement."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        TRAINING = "training", "fine-tuning the encoder"
        DONE = "done"
        FAILED = "failed"

    class Scorer(models.TextChoices):
        RIDGE = "ridge", "ridge regression over embeddings and text features"
        FINETUNED = "finetuned", "fine-tuned encoder"

    ACTIVE_STATES = (State.QUEUED, State.RUNNING, State.TRAINING)

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="calibrations")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED, db_index=True)
    n_graded = models.PositiveIntegerField(default=0, help_text="Teacher-graded essays learned from")
    folds = models.PositiveSmallIntegerField(default=0)
    qwk = models.FloatField(null=True, blank=True, help_text="Cross-validated QWK of the ridge scorer")
    rmse = models.FloatField(null=True, blank=True, help_text="Cross-validated RMSE of the ridge scorer")
    ridge = models.JSONField(default=dict, blank=True, help_text="{coef, intercept, mean, scale, alpha}")
    cv_predictions = models.JSONField(
        default=list, blank=True,
        help_text="The ridge scorer's cross-validated score of each graded essay, in the order the fine-tune's "
                  "dataset lists them (its line k is essay k)")
    finetune = models.BooleanField(default=False, help_text="Also fine-tune the encoder through mlcore")
    training_job = models.ForeignKey(
        "mlcore.TrainingJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    model_version = models.ForeignKey(
        "mlcore.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    finetuned_qwk = models.FloatField(null=True, blank=True)
    scorer = models.CharField(max_length=10, choices=Scorer.choices, default=Scorer.RIDGE)
    scorer_reason = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-pk"]
        get_latest_by = "created"
        constraints = [
            models.UniqueConstraint(
                fields=["assignment"], condition=Q(state__in=["queued", "running", "training"]),
                name="education_calibration_one_running_per_assignment",
            ),
            models.CheckConstraint(
                condition=Q(qwk__isnull=True) | (Q(qwk__gte=-1) & Q(qwk__lte=1)),
                name="education_calibration_qwk_range",
            ),
        ]

    def __str__(self) -> str:
        return f"calibration {self.pk} of {self.assignment} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES


class Grade(models.Model):
    """The automatic grade of one essay version, with its feedback and the teacher's override.

    `feedback` items are `{start, end, kind, message, rubric_line?}` character spans into the version's text.
    """

    version = models.OneToOneField(EssayVersion, on_delete=models.CASCADE, related_name="grade")
    score = models.SmallIntegerField(help_text="Holistic score, in the assignment's range")
    raw_score = models.FloatField(help_text="The scorer's output before rounding and clipping")
    trait_scores = models.JSONField(default=dict, blank=True)
    feedback = models.JSONField(default=list, blank=True)
    statistics = models.JSONField(default=dict, blank=True)
    calibration = models.ForeignKey(Calibration, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model_version = models.ForeignKey(
        "mlcore.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    scorer = models.CharField(max_length=20, default="baseline", help_text="baseline, ridge or finetuned")
    confidence = models.FloatField()
    needs_review = models.BooleanField(default=False, db_index=True)
    review_reasons = models.JSONField(default=list, blank=True)
    prompt_similarity = models.FloatField(null=True, blank=True)
    duplicate_of = models.ForeignKey(
        EssayVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    teacher_score = models.SmallIntegerField(null=True, blank=True)
    teacher_reason = models.TextField(blank=True, default="")
    overridden_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    overridden_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["version"]
        constraints = [
            models.CheckConstraint(
                condition=Q(confidence__gte=0) & Q(confidence__lte=1), name="education_grade_confidence_0_1"
            ),
            models.CheckConstraint(
                condition=(Q(teacher_score__isnull=True) & Q(overridden_at__isnull=True))
                | (Q(teacher_score__isnull=False) & Q(overridden_at__isnull=False)),
                name="education_grade_override_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"grade of {self.version}: {self.final_score}"

    @property
    def final_score(self) -> int:
        """The score the student sees: the teacher's when there is one."""
        return self.teacher_score if self.teacher_score is not None else self.score


class OverrideLog(models.Model):
    """Audit trail: one row per teacher grade or override of a grade."""

    grade = models.ForeignKey(Grade, on_delete=models.CASCADE, related_name="override_log")
    teacher = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    auto_score = models.SmallIntegerField()
    old_score = models.SmallIntegerField(null=True, blank=True, help_text="The teacher score before, if any")
    new_score = models.SmallIntegerField()
    reason = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        return f"{self.grade}: {self.old_score} → {self.new_score}"

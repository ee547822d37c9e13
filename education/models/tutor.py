"""Course material for the tutor (documents cut into embedded chunks) and the tutor's sessions and messages."""

from django.conf import settings
from django.db import models

from education.models.courses import Course


class CourseMaterial(models.Model):
    """A document a teacher added to a course: its text, and the state of its chunks' embeddings."""

    class Kind(models.TextChoices):
        TEXT = "text", "Plain text"
        MARKDOWN = "markdown", "Markdown"
        PDF = "pdf", "PDF"

    class State(models.TextChoices):
        PENDING = "pending", "Waiting to be embedded"
        PROCESSING = "processing", "Being embedded"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="materials")
    title = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    filename = models.CharField(max_length=255, blank=True, help_text="Empty when the text was pasted in.")
    size_bytes = models.PositiveIntegerField(default=0)
    # The document as read from the file (PDF: its pages' text, joined by blank lines); chunks point into it.
    text = models.TextField()
    page_starts = models.JSONField(default=list, blank=True, help_text="PDF: where each page starts in the text.")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                                    related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    chunk_count = models.PositiveIntegerField(default=0)
    embedded_at = models.DateTimeField(null=True, blank=True)
    processing_since = models.DateTimeField(null=True, blank=True,
                                            help_text="When a worker claimed it; recovery fails it when this gets old.")

    class Meta:
        ordering = ["course", "title"]
        constraints = [
            models.UniqueConstraint(fields=["course", "title"], name="education_material_unique_title"),
            models.CheckConstraint(condition=models.Q(kind__in=["text", "markdown", "pdf"]),
                                   name="education_material_kind_valid"),
            models.CheckConstraint(condition=models.Q(state__in=["pending", "processing", "ready", "failed"]),
                                   name="education_material_state_valid"),
        ]

    def __str__(self) -> str:
        return self.title


class MaterialChunk(models.Model):
    """A passage of a material: text[char_start:char_end] of the document, with its embedding once computed."""

    material = models.ForeignKey(CourseMaterial, on_delete=models.CASCADE, related_name="chunks")
    position = models.PositiveIntegerField()
    text = models.TextField()
    char_start = models.PositiveIntegerField()
    char_end = models.PositiveIntegerField()
    page = models.PositiveIntegerField(null=True, blank=True, help_text="PDF page (from 1) the passage starts on.")
    heading = models.CharField(max_length=500, blank=True, help_text="The headings above the passage, › separated.")
    # float32 unit vector (numpy tobytes); empty until the material is embedded.
    embedding = models.BinaryField(null=True, blank=True)
    # float32 matrix (numpy tobytes), one unit vector per sentence of education.services.retrieval.sentences(text),
    # in order, stored with `embedding`. Empty for material embedded before it was kept (migration 0010): the
    # tutor then embeds those sentences at question time.
    sentence_embeddings = models.BinaryField(null=True, blank=True)

    class Meta:
        ordering = ["material", "position"]
        constraints = [
            models.UniqueConstraint(fields=["material", "position"], name="education_chunk_unique_position"),
            models.CheckConstraint(condition=models.Q(char_end__gt=models.F("char_start")),
                                   name="education_chunk_span_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.material_id}#{self.position}"


class TutorSession(models.Model):
    """One student's conversation with the tutor of a course."""

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="tutor_sessions")
    student = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tutor_sessions")
    title = models.CharField(max_length=200, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["course", "student"], name="education_tsession_owner")]

    def __str__(self) -> str:
        return self.title or f"Session {self.pk}"


class TutorMessage(models.Model):
    """A question and the tutor's reply, with the passages it cites (in citation order: [1] is the first id)."""

    class State(models.TextChoices):
        ANSWERED = "answered", "Answered"
        HINT = "hint", "Hint given, answer held back"
        NOT_IN_MATERIAL = "not_in_material", "Not in the course material"
        REFUSED = "refused", "Refused"

    class FlagSource(models.TextChoices):
        NONE = "", "Not flagged"
        STUDENT = "student", "Flagged by the student"
        AUTOMATIC = "automatic", "Flagged automatically"

    session = models.ForeignKey(TutorSession, on_delete=models.CASCADE, related_name="messages")
    question = models.TextField()
    question_key = models.CharField(
        max_length=64, blank=True, editable=False,
        help_text="sha256 hex of the normalised question (education.services.tutor.question_key), set when the "
                  "message is asked: explanation reuse matches the question on it.")
    state = models.CharField(max_length=16, choices=State.choices)
    answer = models.TextField(blank=True, help_text="The answer span selected from the cited passage.")
    short_answer = models.TextField(blank=True, help_text="The few words of the answer sentence that answer the "
                                                          "question (copied from it; empty when none stand out).")
    hint = models.TextField(blank=True)
    explanation = models.TextField(blank=True, help_text="Generated by the tutor model around the answer.")
    explanation_pending = models.BooleanField(
        default=False, help_text="The answer is shown; an ml worker is writing the explanation.")
    explanation_model = models.ForeignKey(
        "mlcore.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The tutor model version that wrote the explanation (empty text included: the filter kept none "
                  "of it); an answer asked again with the same passages reuses it.")
    notice = models.TextField(blank=True, help_text="Why a question was refused or not answered.")
    cited_chunk_ids = models.JSONField(default=list, blank=True)
    scores = models.JSONField(default=list, blank=True, help_text="Retrieval score of each cited passage.")
    flag_source = models.CharField(max_length=10, choices=FlagSource.choices, blank=True, default="")
    flag_reason = models.TextField(blank=True)
    flagged_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(state__in=["answered", "hint", "not_in_material", "refused"]),
                                   name="education_tmessage_state_valid"),
            models.CheckConstraint(
                condition=(models.Q(flag_source="", flagged_at__isnull=True)
                           | (models.Q(flag_source__in=["student", "automatic"]) & models.Q(flagged_at__isnull=False))),
                name="education_tmessage_flag_consistent",
            ),
        ]
        indexes = [
            models.Index(fields=["flagged_at"], name="education_tmessage_flagged"),
            # explanation_reused: the messages of this question the active tutor model explained.
            models.Index(fields=["question_key", "explanation_model"], name="education_tmessage_reuse"),
        ]

    def __str__(self) -> str:
        return self.question[:60]

    @property
    def is_flagged(self) -> bool:
        return self.flagged_at is not None

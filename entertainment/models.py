"""Worlds (projects) with lore and characters, stories made of segments with alternatives, dialogue
trees, and the generation jobs that write into them."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Project(models.Model):
    """A writer's world: its lore, characters, stories and dialogue trees."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="story_projects")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    blocklist = models.TextField(blank=True, help_text="Words or phrases masked in generated text, one per line")
    style_job = models.ForeignKey("mlcore.TrainingJob", null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+", help_text="The latest style fine-tune on the writer's corpus")
    use_style = models.BooleanField(default=False, help_text="Stories generate through the trained style adapter")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "title"], name="ent_project_title_unique_per_owner"),
            models.CheckConstraint(condition=~Q(title=""), name="ent_project_title_not_empty"),
        ]

    def __str__(self):
        return self.title

    @property
    def scope(self) -> str:
        """The mlcore scope under which this project's LoRA adapter would be registered."""
        return f"project:{self.pk}"

    def blocked_phrases(self) -> list[str]:
        return [line.strip() for line in self.blocklist.splitlines() if line.strip()]


class LoreEntry(models.Model):
    """World info: its text enters the context when one of its keys appears in the recent text."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="lore_entries")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children",
                               help_text="A category entry; disabling it disables the entries under it")
    title = models.CharField(max_length=200)
    keys = models.JSONField(default=list, blank=True, help_text="Words or phrases that trigger the entry")
    text = models.TextField(blank=True)
    priority = models.IntegerField(default=0, help_text="Higher goes in first when the budget is tight")
    insertion_order = models.PositiveIntegerField(default=0)
    enabled = models.BooleanField(default=True)
    can_trigger_others = models.BooleanField(default=False, help_text="Its text may trigger further entries")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-priority", "insertion_order", "id"]
        verbose_name_plural = "lore entries"
        constraints = [
            models.UniqueConstraint(fields=["project", "title"], name="ent_lore_title_unique_per_project"),
            models.CheckConstraint(condition=~Q(title=""), name="ent_lore_title_not_empty"),
            models.CheckConstraint(condition=~Q(parent=models.F("id")), name="ent_lore_not_own_parent"),
        ]

    def __str__(self):
        return self.title


class Character(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="characters")
    name = models.CharField(max_length=100)
    persona = models.TextField(blank=True)
    speaking_style = models.TextField(blank=True)
    goals = models.TextField(blank=True)
    knowledge = models.TextField(blank=True)
    relationships = models.TextField(blank=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="ent_character_name_unique_per_project"),
            models.CheckConstraint(condition=~Q(name=""), name="ent_character_name_not_empty"),
        ]

    def __str__(self):
        return self.name


class Story(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="stories")
    title = models.CharField(max_length=200)
    genre = models.CharField(max_length=100, blank=True)
    premise = models.TextField(blank=True)
    memory = models.TextField(blank=True, help_text="Always at the top of the context")
    authors_note = models.TextField(blank=True, help_text="Inserted a few lines before the end of the context")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated", "-id"]
        verbose_name_plural = "stories"
        constraints = [models.CheckConstraint(condition=~Q(title=""), name="ent_story_title_not_empty")]

    def __str__(self):
        return self.title


class StorySegment(models.Model):
    story = models.ForeignKey(Story, on_delete=models.CASCADE, related_name="segments")
    position = models.PositiveIntegerField()
    active_alternative = models.ForeignKey("SegmentAlternative", null=True, blank=True, on_delete=models.SET_NULL,
                                           related_name="+")

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["story", "position"], name="ent_segment_position_unique")]

    def __str__(self):
        return f"{self.story_id}#{self.position}"

    @property
    def text(self) -> str:
        return self.active_alternative.text if self.active_alternative else ""


class SegmentAlternative(models.Model):
    class Source(models.TextChoices):
        GENERATED = "generated", "Generated"
        EDITED = "edited", "Edited by hand"
        TYPED = "typed", "Typed"

    segment = models.ForeignKey(StorySegment, on_delete=models.CASCADE, related_name="alternatives")
    text = models.TextField()
    source = models.CharField(max_length=10, choices=Source.choices)
    job = models.ForeignKey("GenerationJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(source__in=["generated", "edited", "typed"]),
                                   name="ent_alternative_source_valid"),
        ]

    def __str__(self):
        return f"{self.get_source_display()}: {self.text[:40]}"


class DialogueTree(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="dialogue_trees")
    title = models.CharField(max_length=200)
    scene = models.TextField(blank=True)
    characters = models.ManyToManyField(Character, blank=True, related_name="dialogue_trees")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [models.CheckConstraint(condition=~Q(title=""), name="ent_tree_title_not_empty")]

    def __str__(self):
        return self.title


class DialogueNode(models.Model):
    """One line of a dialogue; `speaker` empty means the player speaks it."""

    tree = models.ForeignKey(DialogueTree, on_delete=models.CASCADE, related_name="nodes")
    speaker = models.ForeignKey(Character, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    is_root = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["tree"], condition=Q(is_root=True), name="ent_one_root_per_tree"),
            models.CheckConstraint(condition=~Q(text=""), name="ent_node_text_not_empty"),
        ]

    def __str__(self):
        return f"{self.speaker_name}: {self.text[:40]}"

    @property
    def speaker_name(self) -> str:
        return self.speaker.name if self.speaker_id else "Player"


class DialogueChoice(models.Model):
    """An edge: from a node to the next, shown to the player as `text` (empty: continue on its own)."""

    tree = models.ForeignKey(DialogueTree, on_delete=models.CASCADE, related_name="choices")
    from_node = models.ForeignKey(DialogueNode, on_delete=models.CASCADE, related_name="choices_out")
    to_node = models.ForeignKey(DialogueNode, on_delete=models.CASCADE, related_name="choices_in")
    text = models.CharField(max_length=500, blank=True)
    condition = models.CharField(max_length=100, blank=True,
                                 help_text="A flag name, or 'not' and a flag name, e.g. has_key")
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["from_node", "to_node"], name="ent_choice_edge_unique"),
        ]

    def __str__(self):
        return self.text or "(continue)"


class GenerationJob(models.Model):
    class Kind(models.TextChoices):
        STORY = "story", "Story"
        DIALOGUE = "dialogue", "Dialogue"

    class Mode(models.TextChoices):
        CONTINUE = "continue", "Continue"
        REGENERATE = "regenerate", "Regenerate"
        CANDIDATES = "candidates", "Candidate replies"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE_STATES = (State.QUEUED, State.RUNNING)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="generation_jobs")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    mode = models.CharField(max_length=12, choices=Mode.choices)
    story = models.ForeignKey(Story, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs")
    tree = models.ForeignKey(DialogueTree, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs")
    character = models.ForeignKey(Character, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    parent_node = models.ForeignKey(DialogueNode, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    player_line = models.TextField(blank=True)
    accepted_node = models.ForeignKey(DialogueNode, null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+", help_text="The reply added to the tree from this job")
    parameters = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    text = models.TextField(blank=True, help_text="The text so far (the current candidate for dialogue)")
    candidates = models.JSONField(default=list, blank=True, help_text="Finished candidate replies (dialogue)")
    tokens = models.PositiveIntegerField(default=0)
    tokens_per_second = models.FloatField(default=0)
    context = models.JSONField(default=dict, blank=True, help_text="The exact prompt and settings sent to the model")
    context_report = models.JSONField(default=list, blank=True, help_text="What went into the prompt, and what not")
    error = models.TextField(blank=True)
    celery_id = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True,
                                     help_text="The worker's last write; a running job silent too long is failed")
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["owner", "created"], name="ent_job_owner_created"),
                   models.Index(fields=["state", "heartbeat"], name="ent_job_state_heartbeat")]
        constraints = [
            models.CheckConstraint(condition=Q(kind="story", story__isnull=False, tree__isnull=True)
                                   | Q(kind="dialogue", tree__isnull=False, story__isnull=True),
                                   name="ent_job_target_matches_kind"),
            models.CheckConstraint(condition=Q(state__in=["queued", "running", "done", "failed", "cancelled"]),
                                   name="ent_job_state_valid"),
            models.UniqueConstraint(fields=["story"], condition=Q(state__in=["queued", "running"]),
                                    name="ent_one_active_job_per_story"),
            models.UniqueConstraint(fields=["tree"], condition=Q(state__in=["queued", "running"]),
                                    name="ent_one_active_job_per_tree"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} job {self.pk} ({self.state})"

    @property
    def active(self) -> bool:
        return self.state in self.ACTIVE_STATES

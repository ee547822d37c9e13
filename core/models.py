from django.db import models


class WorkerHeartbeat(models.Model):
    """A running Celery worker, as last reported by the worker itself.

    Written by a thread in each worker's main process (core.worker_signals); read by /healthz.
    It works on every broker, including the embedded one, which cannot broadcast pings.
    """

    hostname = models.CharField(max_length=255, unique=True)
    queues = models.CharField(max_length=255, help_text="Comma-separated queues it consumes")
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["hostname"]

    def __str__(self):
        return f"{self.hostname} ({self.queues})"

    @property
    def queue_list(self) -> list[str]:
        return [q for q in self.queues.split(",") if q]


class TaskRun(models.Model):
    """One piece of background work, as the database knows it: the ledger that makes Celery tasks recoverable.

    A service writes the row (queued) in its own transaction and sends the message after commit; the worker
    claims it (attempts + 1), then marks it done or failed. `core.taskruns_recover` (beat) requeues running rows
    whose worker stopped sending heartbeats, fails them once attempts run out, and re-sends queued rows whose
    message the broker lost (a Redis restart keeps nothing).
    """

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    task = models.CharField(max_length=200, db_index=True, help_text="Celery task name")
    args = models.JSONField(default=list, blank=True, help_text="Positional arguments of the task")
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Times a worker claimed it")
    max_attempts = models.PositiveSmallIntegerField(default=3)
    celery_task_id = models.CharField(max_length=255, unique=True, help_text="Id of the message last sent for it")
    worker = models.CharField(max_length=255, blank=True, default="", help_text="Hostname of the claiming worker")
    queued_at = models.DateTimeField(help_text="When its message was last sent")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="", help_text="Why it failed, or why it was requeued")

    class Meta:
        ordering = ["-queued_at", "-id"]
        indexes = [models.Index(fields=["state", "queued_at"])]
        constraints = [
            models.CheckConstraint(condition=models.Q(attempts__lte=models.F("max_attempts")),
                                   name="core_taskrun_attempts_capped"),
            models.CheckConstraint(condition=models.Q(max_attempts__gte=1), name="core_taskrun_max_attempts_positive"),
        ]

    def __str__(self):
        return f"{self.task}{self.args} ({self.state}, attempt {self.attempts}/{self.max_attempts})"

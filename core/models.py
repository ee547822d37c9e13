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

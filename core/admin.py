from django.contrib import admin

from core.models import TaskRun, WorkerHeartbeat


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["hostname", "queues", "pid", "started_at", "last_seen"]
    list_filter = ["queues"]
    search_fields = ["hostname"]
    readonly_fields = ["hostname", "queues", "pid", "started_at", "last_seen"]


@admin.register(TaskRun)
class TaskRunAdmin(admin.ModelAdmin):
    """The task ledger, read-only: what background work was asked for, who ran it, and why it failed."""

    list_display = ["id", "task", "args", "state", "attempts_of_max", "worker", "queued_at", "started_at",
                    "finished_at", "error_short"]
    list_filter = ["state", "task"]
    search_fields = ["task", "worker", "celery_task_id", "error"]
    date_hierarchy = "queued_at"
    readonly_fields = ["task", "args", "state", "attempts", "max_attempts", "celery_task_id", "worker", "queued_at",
                       "started_at", "finished_at", "error"]

    @admin.display(description="attempts", ordering="attempts")
    def attempts_of_max(self, run: TaskRun) -> str:
        return f"{run.attempts}/{run.max_attempts}"

    @admin.display(description="error")
    def error_short(self, run: TaskRun) -> str:
        return run.error if len(run.error) <= 120 else run.error[:119] + "…"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

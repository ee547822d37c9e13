from django.contrib import admin

from core.models import WorkerHeartbeat


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["hostname", "queues", "pid", "started_at", "last_seen"]
    list_filter = ["queues"]
    search_fields = ["hostname"]
    readonly_fields = ["hostname", "queues", "pid", "started_at", "last_seen"]

from django.contrib import admin

from mlcore.models import Dataset, ModelVersion, TrainingJob


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "scope", "family", "name", "state", "created_at", "activated_at"]
    list_filter = ["task", "family", "state"]
    search_fields = ["name", "scope", "base_spec"]
    readonly_fields = ["created_at", "activated_at"]


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "scope", "dataset", "state", "progress", "attempts", "worker", "created_at"]
    list_filter = ["task", "state"]
    search_fields = ["scope", "celery_task_id", "worker"]
    raw_id_fields = ["dataset", "base_version", "result_version", "created_by"]
    readonly_fields = ["created_at", "started_at", "heartbeat_at", "finished_at", "history", "log_tail"]


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "kind", "rows_kept", "rows_rejected", "exact_duplicates", "near_duplicates",
                    "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "source_name"]
    readonly_fields = ["created_at", "rejected", "split_counts", "labels"]

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Parlance core"

    def ready(self):
        from core import worker_signals  # noqa: F401  (connects the worker heartbeat)

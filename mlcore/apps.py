from django.apps import AppConfig

from core.roles import Role


class MlcoreConfig(AppConfig):
    name = "mlcore"
    verbose_name = "Models"
    parlance_entry = {
        "title": "Models & training",
        "description": "Model versions per task, fine-tuning jobs with live progress, and the workers that serve them.",
        "url_name": "mlcore:index",
        "roles": frozenset({Role.OPERATOR}),
    }

    def ready(self):
        from mlcore import worker_threads  # noqa: F401  (connects the worker's thread split)

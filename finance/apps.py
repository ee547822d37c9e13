from django.apps import AppConfig

from core.roles import Role


class FinanceConfig(AppConfig):
    name = "finance"
    verbose_name = "Finance"
    parlance_entry = {
        "title": "News sentiment",
        "description": "Load financial news, score every article's sentiment and read it per ticker and sector.",
        "url_name": "finance:dashboard",
        "roles": frozenset({Role.ANALYST}),
    }

    def ready(self):
        from finance import tasks  # noqa: F401  (registers the task ledger's give-up hooks of its tasks)
        from mlcore.signals import model_version_activated

        model_version_activated.connect(_rescore_on_activation, dispatch_uid="finance-rescore-on-activation")


def _rescore_on_activation(sender, version, **kwargs):
    """A new sentiment model reads the whole history again, in the background; pages cached with the old one's
    numbers are dropped at once."""
    if version.task == "finance.sentiment" and not version.scope:
        from celery import current_app

        from finance.services.ingest import finance_data_changed

        finance_data_changed()
        current_app.send_task("finance.rescore_all")

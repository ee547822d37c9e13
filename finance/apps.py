from django.apps import AppConfig

from core.roles import Role


class FinanceConfig(AppConfig):
    name = "finance"
    verbose_name = "Finance"
    parlance_entry = {
        "title": "News sentiment",
        "description": "Load financial news, score every article's sentiment and read it per ticker and sector.",
        "url_name": "finance:index",
        "roles": frozenset({Role.ANALYST}),
    }

from django.apps import AppConfig

from core.roles import Role


class EntertainmentConfig(AppConfig):
    name = "entertainment"
    verbose_name = "Entertainment"
    parlance_entry = {
        "title": "Story studio",
        "description": "Generate stories and NPC dialogue, branch and edit them, export them for a game engine.",
        "url_name": "entertainment:index",
        "roles": frozenset({Role.WRITER}),
    }

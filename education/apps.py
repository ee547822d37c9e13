from django.apps import AppConfig

from core.roles import Role


class EducationConfig(AppConfig):
    name = "education"
    verbose_name = "Education"
    parlance_entry = {
        "title": "Essays & tutor",
        "description": "Submit essays for a score with feedback; ask a tutor about your course material.",
        "url_name": "education:index",
        "roles": frozenset({Role.STUDENT, Role.TEACHER}),
    }

    def ready(self):
        from education import tasks  # noqa: F401  (registers the task ledger's give-up hooks of its tasks)

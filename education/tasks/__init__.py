"""Celery tasks of education (autodiscovered through this package)."""

from education.tasks import grading, tutor  # noqa: F401

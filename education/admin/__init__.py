"""Admin for education models (autodiscovered through this package)."""

from education.admin import grading, tutor  # noqa: F401

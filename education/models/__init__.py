"""Education's models, one module per part of the app (courses, grading, tutor)."""

from education.models.courses import Course

__all__ = ["Course"]

"""Celery tasks of the course-material tutor."""

"""Celery tasks of essay grading and calibration."""

"""Education's models, one module per part of the app (courses, grading, tutor)."""

from education.models.courses import Course
from education.models.grading import Assignment, Calibration, Essay, EssayVersion, Grade, OverrideLog

__all__ = ["Course", "Assignment", "Calibration", "Essay", "EssayVersion", "Grade", "OverrideLog"]

from education.models.tutor import CourseMaterial, MaterialChunk, TutorMessage, TutorSession  # noqa: E402

__all__ += ["CourseMaterial", "MaterialChunk", "TutorMessage", "TutorSession"]

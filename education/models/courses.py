from django.conf import settings
from django.db import models


class Course(models.Model):
    """A teacher's course: its students, assignments and course material belong to it."""

    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    teacher = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="courses_taught")
    students = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="courses_enrolled")
    hint_first = models.BooleanField(
        default=False, help_text="The tutor asks a guiding question before it gives an answer."
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["title"]
        constraints = [models.UniqueConstraint(fields=["teacher", "title"], name="education_course_unique_title")]

    def __str__(self) -> str:
        return self.title

"""Database constraints of the grading models hold without the services' checks."""

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from education.models import Assignment, Calibration, Essay, EssayVersion, Grade


def grade_for(version, **extra):
    return Grade.objects.create(version=version, score=3, raw_score=3.2, confidence=0.5, **extra)


@pytest.mark.parametrize("lo, hi", [(3, 3), (5, 2), (-1, 4), (0, 101)])
def test_score_range_must_be_valid(course, lo, hi):
    with pytest.raises(IntegrityError):
        Assignment.objects.create(course=course, title="Bad range", prompt="p", score_min=lo, score_max=hi)


def test_assignment_titles_unique_per_course(assignment):
    with pytest.raises(IntegrityError):
        Assignment.objects.create(course=assignment.course, title=assignment.title, prompt="again")


def test_one_essay_per_student_and_unique_version_numbers(assignment, student):
    essay = Essay.objects.create(assignment=assignment, student=student, text="x")
    EssayVersion.objects.create(essay=essay, number=1, text="x")
    with transaction.atomic(), pytest.raises(IntegrityError):
        EssayVersion.objects.create(essay=essay, number=1, text="y")
    with transaction.atomic(), pytest.raises(IntegrityError):
        EssayVersion.objects.create(essay=essay, number=0, text="y")
    with transaction.atomic(), pytest.raises(IntegrityError):
        Essay.objects.create(assignment=assignment, student=student, text="second essay")


def test_one_grade_per_version(assignment, make_essay):
    version = make_essay(assignment, "Some text here.")
    grade_for(version)
    with pytest.raises(IntegrityError):
        grade_for(version)


@pytest.mark.parametrize("confidence", [-0.1, 1.5])
def test_confidence_between_0_and_1(assignment, make_essay, confidence):
    version = make_essay(assignment, "Some text here.")
    with pytest.raises(IntegrityError):
        Grade.objects.create(version=version, score=3, raw_score=3.0, confidence=confidence)


def test_override_needs_score_and_time_together(assignment, make_essay):
    version = make_essay(assignment, "Some text here.")
    with transaction.atomic(), pytest.raises(IntegrityError):
        grade_for(version, teacher_score=4)
    with transaction.atomic(), pytest.raises(IntegrityError):
        grade_for(version, overridden_at=timezone.now())
    assert grade_for(version, teacher_score=4, overridden_at=timezone.now()).final_score == 4


def test_one_running_calibration_per_assignment(assignment):
    Calibration.objects.create(assignment=assignment)
    with transaction.atomic(), pytest.raises(IntegrityError):
        Calibration.objects.create(assignment=assignment, state=Calibration.State.TRAINING)
    Calibration.objects.create(assignment=assignment, state=Calibration.State.DONE)  # finished ones are history
    with pytest.raises(IntegrityError):
        Calibration.objects.create(assignment=assignment, state=Calibration.State.DONE, qwk=1.5)

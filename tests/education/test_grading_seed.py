"""`education_setup --demo`: the demo course loads, scores, calibrates, and loads again without duplicates."""

import json

import pytest
from django.core.management import CommandError, call_command

from core.services import demo_accounts_ensure
from education import seed
from education.models import Calibration, Essay, EssayVersion, Grade, OverrideLog


def test_demo_needs_the_demo_users(db):
    with pytest.raises(CommandError, match="demo_setup"):
        call_command("education_setup", "--demo")
    assert not Essay.objects.exists()


def test_demo_course_loads_once(db, embedder):
    demo_accounts_ensure()
    data = json.loads(seed.DEMO_COURSE.read_text(encoding="utf-8"))
    versions = sum(len(e["versions"]) for e in data["essays"])
    graded = sum(1 for e in data["essays"] if e["teacher_grade"] is not None)

    results = seed.demo_course_load(say=lambda line: None)
    assert EssayVersion.objects.count() == versions and Grade.objects.count() == versions
    assert Grade.objects.filter(teacher_score__isnull=False).count() == graded == OverrideLog.objects.count()
    assert {c.state for c in results.values()} == {"done"}
    assert all(c.n_graded >= 10 for c in results.values())
    assert set(Grade.objects.values_list("scorer", flat=True)) == {"ridge"}
    for grade in Grade.objects.select_related("version__essay__assignment"):
        assignment = grade.version.essay.assignment
        assert assignment.score_min <= grade.score <= assignment.score_max
    assert Grade.objects.filter(duplicate_of__isnull=False).count() >= 2  # the two near-copies in the fixture

    seed.demo_course_load(say=lambda line: None)
    assert EssayVersion.objects.count() == versions and OverrideLog.objects.count() == graded
    assert Calibration.objects.count() == 2

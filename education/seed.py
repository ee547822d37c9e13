"""Demo data for essay grading: one course, two assignments with rubrics, 30 essays, teacher grades, calibration.

Every essay in education/fixtures/demo_course.json was written for Parlance (original text, varied quality,
one off-prompt essay and two near-copies so the review flags have something to show).
"""

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from core.roles import Role
from education.models import Assignment, Calibration, Course, Essay, EssayVersion, Grade
from education.services import calibration as calibration_services
from education.services import grading

DEMO_COURSE = Path(__file__).resolve().parent / "fixtures" / "demo_course.json"
DEMO_TEACHER = "teacher"
DEMO_STUDENTS = ("student", "student2")
TEACHER_REASON = "Demo: the teacher's own grade."


class SeedError(RuntimeError):
    """The demo cannot load; the message says what to run first."""


def demo_course_load(*, say=print) -> dict:
    """Create or complete the demo course, score every essay, apply the teacher's grades and calibrate. Idempotent."""
    data = json.loads(DEMO_COURSE.read_text(encoding="utf-8"))
    User = get_user_model()
    users = {u.username: u for u in User.objects.filter(username__in=[DEMO_TEACHER, *DEMO_STUDENTS])}
    missing = [name for name in (DEMO_TEACHER, *DEMO_STUDENTS) if name not in users]
    if missing:
        raise SeedError(f"The demo users {', '.join(missing)} do not exist: run `python manage.py demo_setup` first.")
    with transaction.atomic():
        course, _ = Course.objects.get_or_create(
            teacher=users[DEMO_TEACHER], title=data["course"]["title"],
            defaults={"description": data["course"]["description"]})
        students = {name: users.get(name) or _pupil(name) for name in data["students"]}
        course.students.add(*students.values())
        assignments = {}
        for spec in data["assignments"]:
            assignments[spec["key"]], _ = Assignment.objects.update_or_create(
                course=course, title=spec["title"], defaults={
                    "prompt": spec["prompt"], "score_min": spec["score_min"], "score_max": spec["score_max"],
                    "traits": spec["traits"], "rubric": spec["rubric"]})
        created = 0
        for item in data["essays"]:
            essay, _ = Essay.objects.get_or_create(assignment=assignments[item["assignment"]],
                                                   student=students[item["student"]],
                                                   defaults={"text": item["versions"][-1]})
            have = essay.versions.count()
            for number, text in enumerate(item["versions"][have:], start=have + 1):
                EssayVersion.objects.create(essay=essay, number=number, text=text)
                created += 1
            if essay.text != item["versions"][-1]:
                essay.text = item["versions"][-1]
                essay.save(update_fields=["text", "updated"])
    say(f"education: course “{course.title}” with {len(students)} students; {created} new essay versions")

    for assignment in assignments.values():
        pending = list(EssayVersion.objects.filter(essay__assignment=assignment, grade__isnull=True)
                       .exclude(grading_state=EssayVersion.GradingState.DONE).order_by("pk"))
        EssayVersion.objects.filter(pk__in=[v.pk for v in pending]).update(
            grading_state=EssayVersion.GradingState.PENDING)
        grading.versions_embed(pending)
        context = grading.scoring_context(assignment)
        for version in pending:
            grading.version_grade(version_id=version.pk, context=context)
        say(f"education: {assignment.title}: scored {len(pending)} essay versions")

    teacher, graded = users[DEMO_TEACHER], 0
    for item in data["essays"]:
        if item["teacher_grade"] is None:
            continue
        grade = Grade.objects.get(version__essay__assignment=assignments[item["assignment"]],
                                  version__essay__student=students[item["student"]],
                                  version__number=len(item["versions"]))
        if grade.teacher_score is None:
            grading.grade_override(grade=grade, teacher=teacher, score=item["teacher_grade"], reason=TEACHER_REASON)
            graded += 1
    say(f"education: {graded} new teacher grades")

    results = {}
    for assignment in assignments.values():
        calibration = Calibration.objects.filter(assignment=assignment, state=Calibration.State.DONE).first()
        if calibration is None or calibration.n_graded < len(calibration_services.graded_versions(assignment)):
            calibration = Calibration.objects.create(assignment=assignment, requested_by=teacher, finetune=False)
            calibration_services.calibration_run(calibration_id=calibration.pk)
            calibration.refresh_from_db()
        results[assignment.title] = calibration
        say(f"education: {assignment.title}: calibrated on {calibration.n_graded} grades, "
            f"cross-validated QWK {calibration.qwk if calibration.qwk is not None else '—'} ({calibration.state})")
    return results


def demo_course_title() -> str:
    return json.loads(DEMO_COURSE.read_text(encoding="utf-8"))["course"]["title"]


def _pupil(username: str):
    """An extra demo student who never logs in (no usable password)."""
    User = get_user_model()
    user, created = User.objects.get_or_create(username=username, defaults={
        "first_name": username.replace("pupil", "Pupil "), "email": f"{username}@demo.parlance.invalid"})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    user.groups.add(Group.objects.get_or_create(name=Role.STUDENT.value)[0])
    return user

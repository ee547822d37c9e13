"""Grading pages: who sees what (a permission table), submissions, overrides, escaping, query counts."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from core.roles import Role
from education.models import Assignment, Essay, EssayVersion, Grade, OverrideLog
from education.services import feedback as fb


def graded_version(assignment, student, text, *, score=3):
    essay = Essay.objects.create(assignment=assignment, student=student, text=text)
    version = EssayVersion.objects.create(essay=essay, number=1, text=text, grading_state="done")
    result = fb.essay_feedback(text, prompt=assignment.prompt, rubric=assignment.rubric)
    Grade.objects.create(version=version, score=score, raw_score=score + 0.2, confidence=0.6, feedback=result.items,
                         statistics=result.statistics, trait_scores={"Ideas": score}, scorer="ridge")
    return version


@pytest.fixture
def world(assignment, student, other_student, make_user):
    assignment.course.students.add(other_student)
    mine = graded_version(assignment, student, "My essay about phones. i think the the rules help.")
    theirs = graded_version(assignment, other_student, "Another essay about phones, written by B.")
    return {
        "other_teacher": make_user(Role.TEACHER, username="t_other"),
        "outsider": make_user(Role.STUDENT, username="s_outside"),
        "analyst": make_user(Role.ANALYST, username="a_ana"),
        "mine": mine, "theirs": theirs,
    }


def urls(assignment, world):
    course = assignment.course
    return {
        "index": reverse("education:index"),
        "course": reverse("education:course", args=[course.pk]),
        "assignment_new": reverse("education:assignment_new", args=[course.pk]),
        "assignment_edit": reverse("education:assignment_edit", args=[assignment.pk]),
        "grading": reverse("education:grading", args=[assignment.pk]),
        "assignment": reverse("education:assignment", args=[assignment.pk]),
        "my_essay": reverse("education:essay", args=[world["mine"].essay_id]),
        "their_essay": reverse("education:essay", args=[world["theirs"].essay_id]),
    }


# user → page → expected status (302 for the teacher's assignment page is its redirect to grading)
PERMISSIONS = {
    "student": {"index": 200, "course": 200, "assignment_new": 403, "assignment_edit": 403, "grading": 403,
                "assignment": 200, "my_essay": 200, "their_essay": 404},
    "teacher": {"index": 200, "course": 200, "assignment_new": 200, "assignment_edit": 200, "grading": 200,
                "assignment": 302, "my_essay": 200, "their_essay": 200},
    "other_teacher": {"index": 200, "course": 404, "assignment_new": 404, "assignment_edit": 404, "grading": 404,
                      "assignment": 404, "my_essay": 404, "their_essay": 404},
    "outsider": {"index": 200, "course": 404, "assignment_new": 403, "assignment_edit": 403, "grading": 403,
                 "assignment": 404, "my_essay": 404, "their_essay": 404},
    "analyst": {page: 403 for page in ("index", "course", "assignment_new", "assignment_edit", "grading",
                                       "assignment", "my_essay", "their_essay")},
}


@pytest.mark.parametrize("who", list(PERMISSIONS))
def test_permission_table(client, assignment, world, teacher, student, who):
    users = {"student": student, "teacher": teacher, **world}
    client.force_login(users[who])
    for page, url in urls(assignment, world).items():
        assert client.get(url).status_code == PERMISSIONS[who][page], (who, page)


def test_anonymous_goes_to_login(client, assignment, world):
    for url in urls(assignment, world).values():
        response = client.get(url)
        assert response.status_code == 302 and "login" in response["Location"]


def test_posts_are_owner_only(client, assignment, world, student):
    grade = world["mine"].grade
    override = reverse("education:grade_override", args=[grade.pk])
    calibrate = reverse("education:calibrate", args=[assignment.pk])
    client.force_login(world["other_teacher"])
    assert client.post(override, {"score": 5, "reason": "x"}).status_code == 404
    assert client.post(calibrate).status_code == 404
    client.force_login(student)
    assert client.post(override, {"score": 5, "reason": "x"}).status_code == 403
    assert not OverrideLog.objects.exists()


def test_override_flow_is_audited(client, assignment, world, teacher):
    version = world["mine"]
    url = reverse("education:grade_override", args=[version.grade.pk])
    client.force_login(teacher)
    client.post(url, {"score": 5, "reason": "Strong argument"})
    client.post(url, {"score": 4, "reason": "On second reading, thin evidence"})
    grade = Grade.objects.get(pk=version.grade.pk)
    assert grade.teacher_score == 4 and grade.score == 3 and grade.overridden_by == teacher
    log = list(OverrideLog.objects.order_by("pk").values_list("auto_score", "old_score", "new_score", "reason"))
    assert log == [(3, None, 5, "Strong argument"), (3, 5, 4, "On second reading, thin evidence")]

    response = client.post(url, {"score": 9, "reason": "too high"}, follow=True)
    assert "between 1 and 6" in response.content.decode()
    response = client.post(url, {"score": 2, "reason": "  "}, follow=True)
    assert "Reason" in response.content.decode()
    assert OverrideLog.objects.count() == 2 and Grade.objects.get(pk=grade.pk).teacher_score == 4

    page = client.get(reverse("education:essay", args=[version.essay_id])).content.decode()
    assert "On second reading, thin evidence" in page


def test_student_sees_teacher_grade_and_difference(client, assignment, student, teacher):
    first = graded_version(assignment, student, "First go at it.", score=2)
    second = EssayVersion.objects.create(essay=first.essay, number=2, text="A better second go.", grading_state="done")
    Grade.objects.create(version=second, score=4, raw_score=4.1, confidence=0.7)
    client.force_login(student)
    page = client.get(reverse("education:essay", args=[first.essay_id])).content.decode()
    assert "+2" in page and "since version 1" in page
    page = client.get(reverse("education:essay", args=[first.essay_id]) + "?v=1").content.decode()
    assert "First go at it." in page and "since version" not in page


def test_essay_text_and_feedback_are_escaped(client, assignment, student):
    text = 'Fine start. <script>alert("x")</script> and the the <b>end</b>.'
    version = graded_version(assignment, student, text)
    client.force_login(student)
    page = client.get(reverse("education:essay", args=[version.essay_id])).content.decode()
    assert "<script>alert" not in page and "<b>end" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert '<mark class="fb fb-grammar' in page  # the doubled word is highlighted server-side
    assert "Conventions" in page  # the comment cites the rubric criterion


@pytest.mark.parametrize("data, message", [
    ({"text": "   "}, "The essay is empty"),
    ({"text": "word " * 20_001}, "the limit is 20,000"),
    ({"upload": ("essay.txt", "café déjà vu".encode("cp1252"))}, "not UTF-8 text"),
    ({"upload": ("essay.pdf", b"%PDF-1.4")}, "Upload a plain-text .txt file."),
    ({"upload": ("essay.txt", b"\x00\x01binary")}, "binary data"),
    ({"text": "Both", "upload": ("essay.txt", b"Also a file")}, "not both"),
])
def test_bad_submissions_get_a_message_and_write_nothing(client, assignment, student, data, message):
    client.force_login(student)
    if "upload" in data:
        name, content = data.pop("upload")
        data["upload"] = SimpleUploadedFile(name, content, content_type="text/plain")
    response = client.post(reverse("education:assignment", args=[assignment.pk]), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not EssayVersion.objects.exists()


def test_submit_by_text_and_by_upload(client, assignment, student, django_capture_on_commit_callbacks):
    client.force_login(student)
    url = reverse("education:assignment", args=[assignment.pk])
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(url, {"text": "Phones should be banned in class."})
    assert response.status_code == 302 and len(callbacks) == 1
    upload = SimpleUploadedFile("essay.txt", "\ufeffPhones help in emergencies.".encode(), content_type="text/plain")
    client.post(url, {"upload": upload})
    texts = list(EssayVersion.objects.order_by("number").values_list("number", "text"))
    assert texts == [(1, "Phones should be banned in class."), (2, "Phones help in emergencies.")]
    page = client.get(reverse("education:essay", args=[EssayVersion.objects.first().essay_id])).content.decode()
    assert "Scoring in progress" in page


def test_assignment_form_validates_the_rubric(client, course, teacher):
    client.force_login(teacher)
    url = reverse("education:assignment_new", args=[course.pk])
    bad = {"title": "Letters", "prompt": "Write a letter.", "score_min": 1, "score_max": 4,
           "rubric": "Conventions: Spelling\n  9: Perfect\n  oops"}
    response = client.post(url, bad)
    content = response.content.decode()
    assert response.status_code == 400
    assert "Line 2: score 9 is outside the range 1–4." in content and "Line 3: expected" in content
    good = {**bad, "rubric": "Conventions: Spelling\n  4: Perfect\n  1: Many errors\nIdeas: A clear point\n  4: Sharp"}
    response = client.post(url, good)
    assignment = Assignment.objects.get(title="Letters")
    assert response.status_code == 302 and assignment.traits == ["Conventions", "Ideas"]
    assert assignment.rubric[0] == {"name": "Conventions", "description": "Spelling",
                                    "lines": [{"score": 4, "text": "Perfect"}, {"score": 1, "text": "Many errors"}]}
    edit = client.get(reverse("education:assignment_edit", args=[assignment.pk])).content.decode()
    assert "  4: Perfect" in edit


def test_grading_table_query_count_does_not_grow(client, assignment, teacher, make_essay,
                                                 django_assert_max_num_queries):
    for i in range(12):
        version = make_essay(assignment, f"Essay number {i} about phones in class.")
        Grade.objects.create(version=version, score=1 + i % 6, raw_score=1.0, confidence=0.4, needs_review=i % 2 == 0,
                             review_reasons=["Low confidence (0.40)."], trait_scores={"Ideas": 2})
    client.force_login(teacher)
    with django_assert_max_num_queries(14):
        response = client.get(reverse("education:grading", args=[assignment.pk]))
    assert response.status_code == 200
    assert response.content.decode().count('class="row-flagged"') == 6
    with django_assert_max_num_queries(8):
        assert client.get(reverse("education:course", args=[assignment.course.pk])).status_code == 200
    with django_assert_max_num_queries(8):
        assert client.get(reverse("education:index")).status_code == 200


def test_grading_table_shows_rubric_scores_and_chart(client, assignment, world, teacher):
    client.force_login(teacher)
    page = client.get(reverse("education:grading", args=[assignment.pk])).content.decode()
    assert 'id="distribution-data"' in page and "Not calibrated yet" in page


def test_trait_scores_show_the_closest_rubric_line(client, assignment, student):
    version = graded_version(assignment, student, "A short essay.")
    Grade.objects.filter(version=version).update(trait_scores={"Ideas": 5, "Conventions": 1, "Organization": 6})
    client.force_login(student)
    page = client.get(reverse("education:essay", args=[version.essay_id])).content.decode()
    assert "5 <span class=\"small muted\">— closest rubric line (6): Insightful and fully developed.</span>" in page
    assert "1 <span class=\"small muted\">— closest rubric line (1): Errors block the meaning.</span>" in page
    assert "6 <span class=\"small muted\">— closest rubric line (6): Smooth transitions.</span>" in page


def test_calibrate_button_queues_a_calibration(client, assignment, world, teacher, django_capture_on_commit_callbacks):
    url = reverse("education:calibrate", args=[assignment.pk])
    client.force_login(teacher)
    response = client.post(url, {"finetune": "on"}, follow=True)
    assert "Grade at least 3 essays before calibrating (0 graded so far)." in response.content.decode()
    for version in (world["mine"], world["theirs"]):
        Grade.objects.filter(version=version).update(teacher_score=3, overridden_at="2026-01-01T00:00:00Z")
    third = graded_version(assignment, world["outsider"], "A third essay on phones.")
    Grade.objects.filter(version=third).update(teacher_score=2, overridden_at="2026-01-01T00:00:00Z")
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(url, {"finetune": "on"}, follow=True)
    calibration = assignment.calibrations.get()
    assert calibration.state == "queued" and calibration.finetune and calibration.requested_by == teacher
    assert len(callbacks) == 1 and "Calibration queued" in response.content.decode()
    assert "Queued</span> calibration started" in response.content.decode()

"""The student: submit an essay, read its score and feedback, ask the tutor and open the passage it cites."""

import re

import pytest

from education.models import CourseMaterial
from education.services.material import material_create
from tests.education.conftest import (  # noqa: F401  (fixtures)
    TUTOR_CORPUS,
    assignment,
    course,
    embedder,
    student,
    teacher,
    tutor_lm,
)
from tests.workers import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.worker]

# Short (the tiny test encoder reads 128 positions), with a misspelling the feedback should point out.
ESSAY = (
    "Schools should not ban phones in class. Phones help students look up facts quickly, and teachers can use "
    "them for short quizzes.\n\n"
    "However, phones can distract students when they are used for games. Therefore a clear rule is better than "
    "a ban: phones stay in bags unless the teacher asks for them. This rule is fair becuase it keeps the "
    "benefits and limits the harm."
)
THESIS_ANSWER = "A thesis statement is the sentence that states the main claim of an essay."


def test_student_journey(journey, ml_worker, course, student, teacher, assignment, embedder,  # noqa: F811
                         tutor_lm):  # noqa: F811
    with ml_worker(MLCORE_ENCODER=embedder):
        # The teacher's course material, embedded for the tutor by the worker.
        materials = [material_create(course=course, user=teacher, title=title, kind="markdown", text=text)
                     for title, text in TUTOR_CORPUS.items()]
        wait_for(lambda: CourseMaterial.objects.filter(pk__in=[m.pk for m in materials], state="ready").count() == 3,
                 timeout=120, what="the course material to be embedded")

        j = journey()
        page = j.page
        j.login(student.username)
        j.goto("/education/", snap="education-home")
        page.get_by_role("link", name="Writing 101").click()
        j.see_heading("Writing 101")
        assert "not submitted" in page.locator("tbody").inner_text()
        j.snap("course")
        page.get_by_role("link", name="Phones in school").click()
        page.get_by_label("Your essay").fill(ESSAY)
        j.snap("assignment")
        page.get_by_role("button", name="Submit").click()

        # The essay page says scoring is under way; the student reloads until the score and feedback are there.
        j.see_heading("Your essay")
        assert "Version 1 submitted" in page.locator(".messages").inner_text()
        j.snap("essay-submitted")
        for _ in range(60):
            if page.locator(".score-value").count():
                break
            assert "Scoring in progress" in page.locator("main").inner_text()
            page.wait_for_timeout(1000)
            page.reload()
        score = page.locator(".score-value").inner_text()
        assert re.fullmatch(r"[1-6] / 6", score), score
        comments = page.locator("ol.comments li")
        assert comments.count() >= 1
        assert "becuase" in page.locator("ol.comments").inner_text()
        assert page.locator(".essay-text mark.fb-spelling", has_text="becuase").count() == 1
        j.snap("essay-feedback")

        # The tutor answers from the course material and cites the passage.
        page.get_by_role("link", name="Writing 101").click()
        j.see_heading("Writing 101")
        assert re.search(r"version 1\s+[1-6] / 6", page.locator("tbody").inner_text())
        j.snap("course-scored")
        page.get_by_role("link", name="Ask the tutor").click()
        j.see_heading("Writing 101")
        page.get_by_label("Question").fill("What is a thesis statement?")
        j.snap("tutor")
        page.get_by_role("button", name="Ask").click()
        answer = page.locator(".tutor-answer")
        answer.wait_for()
        assert THESIS_ANSWER in answer.inner_text()
        # The answer shows at once; the ml worker writes the explanation and the page polls for it, its notice
        # going once the model has written.
        pending = page.locator("[data-tutor-explain]")
        assert pending.count() == 1 and "being written" in pending.inner_text()
        pending.wait_for(state="detached")
        j.snap("tutor-answer")
        citation = answer.locator("a.tutor-cite").first
        assert citation.get_attribute("title").startswith("Thesis statements")
        citation.click()
        j.see_heading("Thesis statements")
        assert "is highlighted below" in page.locator(".note").inner_text()
        assert THESIS_ANSWER in page.locator(".tutor-document mark").inner_text()
        j.snap("tutor-citation")
        j.check()

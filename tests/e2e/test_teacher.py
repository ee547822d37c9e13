"""The teacher: grade a few scored essays, calibrate the scorer on them, then override one essay's grade."""

import re

import pytest

from core.roles import Role
from education.services import grading
from tests.education.conftest import assignment, course, embedder, student, teacher  # noqa: F401  (fixtures)
from tests.education.test_grading_calibration import essay_of_quality

pytestmark = [pytest.mark.e2e, pytest.mark.worker]

LEVELS = [1, 2, 3, 5, 4]  # pupil0..pupil4; the teacher grades the first four, then overrides pupil4


def test_teacher_journey(journey, ml_worker, make_user, course, teacher, assignment, embedder):  # noqa: F811
    with ml_worker(MLCORE_ENCODER=embedder):
        for i, level in enumerate(LEVELS):
            pupil = make_user(Role.STUDENT, username=f"pupil{i}")
            course.students.add(pupil)
            grading.essay_submit(assignment=assignment, student=pupil, text=essay_of_quality(level, i))

        j = journey()
        page = j.page
        j.login(teacher.username)
        j.goto("/education/", snap="education-home")
        page.get_by_role("link", name="Writing 101").click()
        j.see_heading("Writing 101")
        j.snap("course")
        page.get_by_role("link", name="Phones in school").click()
        j.see_heading("Phones in school")

        # The essays are scored by the worker; the teacher reloads until every row has an automatic score.
        rows = page.locator("table.grading-table tbody tr")
        for _ in range(90):
            if rows.count() == 5 and page.locator("table.grading-table .badge-run").count() == 0:
                break
            page.wait_for_timeout(1000)
            page.reload()
        assert rows.count() == 5
        for row in rows.all():
            assert re.search(r"v1\s+[1-6]\s+\d\.\d\d", row.inner_text()), row.inner_text()
        j.snap("grading-scored")

        # Grade four essays (score and reason on each row), then calibrate on them without fine-tuning.
        for i, level in enumerate(LEVELS[:4]):
            row = page.locator("table.grading-table tbody tr", has_text=f"pupil{i}")
            row.get_by_label("Grade").select_option(str(level))
            row.get_by_label("Reason").fill(f"Level {level} against the rubric")
            row.get_by_role("button", name="Save").click()
            assert f"Saved the grade for pupil{i}." in page.locator(".messages").inner_text()
            assert f"graded {level} by {teacher.username}" in page.locator(
                "table.grading-table tbody tr", has_text=f"pupil{i}").inner_text()
        assert "You have graded 4 essay versions" in page.locator("#calibration").inner_text()
        j.snap("graded")
        page.get_by_label(re.compile("Also fine-tune the encoder")).uncheck()
        page.get_by_role("button", name="Calibrate").click()
        assert "Calibration queued" in page.locator(".messages").inner_text()
        j.snap("calibration-queued")
        for _ in range(90):
            if page.locator("#calibration dt", has_text="QWK (cross-validated)").count():
                break
            assert "The last calibration failed" not in page.locator("#calibration").inner_text()
            page.wait_for_timeout(1000)
            page.reload()
        panel = page.locator("#calibration").inner_text()
        assert "Learned from 4 graded essays" in panel, panel
        assert re.search(r"Scorer\s+Ridge regression", panel, re.IGNORECASE), panel
        j.snap("calibrated")

        # Override the automatic score of the essay not graded yet, from its own page.
        page.locator("table.grading-table").get_by_role("link", name="pupil4").click()
        j.see_heading("pupil4’s essay")
        j.snap("essay")
        auto = page.locator(".score-value").inner_text()
        override = 6 if not auto.startswith("6") else 5
        page.get_by_label("Teacher grade").fill(str(override))
        page.get_by_label("Reason", exact=True).fill("Clear position, well organised")
        page.get_by_role("button", name="Save grade").click()
        assert "Saved the grade for pupil4." in page.locator(".messages").inner_text()
        assert page.locator(".score-value").inner_text() == f"{override} / 6"
        assert "Graded by your teacher" in page.locator(".stats").inner_text()
        history = page.locator("section:has(h2:text('Your grade')) ul").inner_text()
        assert f"→ {override} — Clear position, well organised" in history
        j.snap("essay-overridden")
        j.check()

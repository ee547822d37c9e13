"""Essays are scored and the scorer calibrated by a real ml worker process."""

import pytest

from core.roles import Role
from education.models import Calibration, EssayVersion, Grade
from education.services import calibration, grading
from mlcore.models import ModelVersion, Task
from tests.education.test_grading_calibration import essay_of_quality
from tests.workers import app_broker_env, celery_worker, purge_app_queues, require_redis, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_submissions_are_scored_and_calibration_fine_tunes_on_the_ml_worker(
    assignment, teacher, make_user, embedder, mlcore_home, tutor_lm, tmp_path
):
    from core.celery import app

    if app.conf.broker_url.startswith("redis"):
        require_redis(app.conf.broker_url)
    purge_app_queues()
    env = {**app_broker_env(), "MLCORE_HOME": str(mlcore_home)}
    with celery_worker(broker_url=env["CELERY_BROKER_URL"], queues="default,ml", extra_env=env, log_dir=tmp_path):
        for i in range(10):
            pupil = make_user(Role.STUDENT, username=f"w_pupil{i}")
            assignment.course.students.add(pupil)
            grading.essay_submit(assignment=assignment, student=pupil, text=essay_of_quality(1 + i % 6, i))
        wait_for(lambda: Grade.objects.count() == 10, timeout=120, what="ten grades")
        for grade in Grade.objects.select_related("version"):
            level = 1 + int(grade.version.essay.student.username.removeprefix("w_pupil")) % 6
            grading.grade_override(grade=grade, teacher=teacher, score=level, reason="calibration")
        cal = calibration.calibration_start(assignment=assignment, user=teacher, finetune=True)
        wait_for(lambda: Calibration.objects.get(pk=cal.pk).state in ("done", "failed"), timeout=240,
                 what="the calibration to finish")
    cal.refresh_from_db()
    assert cal.state == "done", cal.error
    assert cal.n_graded == 10 and cal.training_job.state == "succeeded"
    assert cal.model_version == ModelVersion.objects.get(task=Task.ESSAY_SCORE, scope=assignment.scope,
                                                         state="active")
    assert set(EssayVersion.objects.values_list("grading_state", flat=True)) == {"done"}
    assert set(Grade.objects.values_list("calibration", flat=True)) == {cal.pk}
    # The worker read every graded essay with the tutor's LM too, and the scorer's rows hold that reading.
    assert cal.ridge["lm"] == tutor_lm.pk and len(cal.ridge["coef"]) == 32 + 32 + 32 + 13
    assert set(EssayVersion.objects.values_list("lm_version", flat=True)) == {tutor_lm.pk}

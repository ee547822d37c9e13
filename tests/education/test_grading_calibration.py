"""Calibration: cross-validated agreement with the teacher, the scorer it picks, what to grade next."""

import numpy as np
import pytest

from education.models import Calibration, EssayVersion, Grade
from education.selectors.grading import calibration_panel
from education.services import calibration, grading
from mlcore.models import ModelVersion, Task, TrainingJob

SENTENCES = [
    "Phones distract students during lessons because messages arrive all the time.",
    "However, families want to reach their children when plans change suddenly.",
    "A locker rule keeps devices away from desks while still allowing calls at lunch.",
    "Teachers also lose minutes every lesson asking pupils to put their screens away.",
    "In addition, research on attention suggests that even a silent phone draws the eye.",
    "Therefore, a clear rule agreed with parents would protect learning time.",
]
ERRORS = "i think phones is bad becuase alot of peple use them in class and the the teacher dont like it"


def essay_of_quality(level: int, variant: int) -> str:
    """Longer, cleaner essays for higher levels; low levels are short and full of errors."""
    body = " ".join(SENTENCES[(variant + i) % len(SENTENCES)] for i in range(level))
    if level <= 2:
        body = ERRORS + f" {variant}. " + body
    return body if level < 4 else body.replace(". However", ".\n\nHowever")


def graded_set(assignment, make_essay, teacher, n: int):
    versions = []
    for i in range(n):
        level = 1 + i % 6
        version = make_essay(assignment, essay_of_quality(level, i))
        grade = grading.version_grade(version_id=version.pk)
        grading.grade_override(grade=grade, teacher=teacher, score=level, reason="calibration grade")
        versions.append(version)
    return versions


def test_calibration_needs_three_grades(assignment):
    with pytest.raises(grading.GradingError, match="at least 3"):
        calibration.calibration_start(assignment=assignment)


def test_calibration_fits_ridge_and_rescores(assignment, make_essay, teacher, embedder,
                                             django_capture_on_commit_callbacks):
    graded_set(assignment, make_essay, teacher, 8)
    ungraded = make_essay(assignment, essay_of_quality(5, 40))
    grading.version_grade(version_id=ungraded.pk)
    with django_capture_on_commit_callbacks() as callbacks:
        cal = calibration.calibration_start(assignment=assignment, user=teacher, finetune=True)
    assert len(callbacks) == 1 and cal.state == "queued"
    with pytest.raises(grading.GradingError, match="already running"):
        calibration.calibration_start(assignment=assignment, user=teacher)

    assert calibration.calibration_run(calibration_id=cal.pk) == "done"
    assert calibration.calibration_run(calibration_id=cal.pk) == "claimed elsewhere"
    cal.refresh_from_db()
    assert cal.n_graded == 8 and cal.folds == 5 and cal.scorer == "ridge"
    assert len(cal.cv_predictions) == 8 and all(1 <= p <= 6 for p in cal.cv_predictions)  # one per graded essay
    # The rows: the embedding, the middle layer's (32 each from the tiny encoder) and the 13 text features.
    assert -1 <= cal.qwk <= 1 and cal.rmse >= 0 and len(cal.ridge["coef"]) == 32 + 32 + 13 and cal.ridge["middle"]
    assert "fewer than 10 graded essays" in cal.scorer_reason  # fine-tune asked, but too few grades
    assert ("averaged with a kernel ridge" in cal.scorer_reason) == ("kernel" in cal.ridge)
    assert not TrainingJob.objects.exists()
    grade = Grade.objects.get(version=ungraded)
    assert grade.scorer == "ridge" and grade.calibration == cal and 1 <= grade.score <= 6
    ungraded.refresh_from_db()
    nearest = max(float(np.dot(ungraded.embedding, v.embedding)) for v in calibration.graded_versions(assignment))
    assert grade.confidence == grading.confidence_for(cal, nearest, 1, 6)
    assert not any("not calibrated" in r for r in grade.review_reasons)

    panel = calibration_panel(assignment=assignment)
    assert panel["current"] == cal and not panel["reliable"] and "below the minimum of 10" in panel["status"]
    assert [v.pk for v in panel["suggestions"]] == [ungraded.pk]


def test_fine_tune_is_activated_for_the_assignment_scope(assignment, make_essay, teacher, embedder, monkeypatch):
    from mlcore import services as ml_services

    monkeypatch.setattr(calibration, "FINETUNE_PARAMS", {"epochs": 1, "batch_size": 8, "max_length": 64})
    graded_set(assignment, make_essay, teacher, 12)
    cal = calibration.calibration_start(assignment=assignment, user=teacher, finetune=True)
    assert calibration.calibration_run(calibration_id=cal.pk) == "training"
    cal.refresh_from_db()
    job = cal.training_job
    assert job.task == Task.ESSAY_SCORE and job.scope == f"assignment:{assignment.pk}"
    assert job.dataset.kind == "regression" and job.dataset.rows_read == 12  # near-copies are dropped by mlcore
    assert calibration.calibration_finish(calibration_id=cal.pk) == "waiting"

    assert ml_services.finetune_run(job_id=job.pk, worker="inline") == "succeeded"
    assert calibration.calibration_finish(calibration_id=cal.pk) == "done"
    cal.refresh_from_db()
    active = ModelVersion.objects.get(task=Task.ESSAY_SCORE, scope=assignment.scope, state="active")
    assert cal.model_version == active and cal.state == "done"
    # the scorer is whichever agreed better with the teacher, and the page says why
    assert cal.scorer in {"ridge", "finetuned"} and "QWK" in cal.scorer_reason
    scorers = set(Grade.objects.filter(version__essay__assignment=assignment).values_list("scorer", flat=True))
    assert scorers == {cal.scorer}


def test_the_fine_tune_is_compared_with_ridge_on_its_own_validation_essays(assignment, make_essay, teacher,
                                                                           embedder, mlcore_home):
    """The fine-tune's QWK comes from its validation split, a tenth of the grades; ridge's is measured on those
    same essays (its cross-validated predictions of them), not on all of them."""
    import json

    from mlcore import api as ml
    from mlcore.models import Family

    graded_set(assignment, make_essay, teacher, 8)
    lines = [{"text": " ".join(f"word{i}x{j}" for j in range(8)), "target": 1 + i % 6} for i in range(60)]
    dataset = ml.dataset_create(name="grades", kind="regression", filename="grades.jsonl", min_chars=1,
                                data="".join(json.dumps(line) + "\n" for line in lines).encode())
    held = [row["line"] for row in ml.dataset_rows(dataset=dataset, split="validation")]
    assert len(held) >= calibration.FINETUNE_MIN_VALIDATION

    def finish(*, overall: float, on_held: dict[int, int] | None, finetuned: float) -> Calibration:
        first = calibration.calibration_start(assignment=assignment, user=teacher, finetune=False)
        calibration.calibration_run(calibration_id=first.pk)  # a real ridge fit, to score with
        first.refresh_from_db()
        predictions = [1] * len(lines)
        for line, score in (on_held or {}).items():
            predictions[line - 1] = score
        version = ModelVersion.objects.create(
            task=Task.ESSAY_SCORE, scope=assignment.scope, family=Family.REGRESSOR, base_spec=embedder, state="ready",
            metrics={"qwk": finetuned, "n": len(held)})
        job = TrainingJob.objects.create(task=Task.ESSAY_SCORE, dataset=dataset, state="succeeded",
                                         result_version=version)
        Calibration.objects.filter(pk=first.pk).update(
            state=Calibration.State.TRAINING, qwk=overall, training_job=job,
            cv_predictions=predictions if on_held is not None else [])
        assert calibration.calibration_finish(calibration_id=first.pk) == "done"
        first.refresh_from_db()
        return first

    target = {line: lines[line - 1]["target"] for line in held}
    # Ridge is weak overall (0.10) but exact on the fine-tune's essays: it stays (the old rule took the fine-tune).
    kept = finish(overall=0.1, on_held=target, finetuned=0.8)
    assert kept.scorer == "ridge" and kept.finetuned_qwk == 0.8
    assert "(1.00 on the same essays) is not beaten by the fine-tuned encoder (QWK 0.80" in kept.scorer_reason
    # Ridge is strong overall (0.90) but wrong on the fine-tune's essays: the fine-tune scores (the old rule: ridge).
    wrong = {line: 7 - score for line, score in target.items()}
    switched = finish(overall=0.9, on_held=wrong, finetuned=0.8)
    assert switched.scorer == "finetuned" and "on the same essays" in switched.scorer_reason
    assert set(Grade.objects.filter(version__essay__assignment=assignment).values_list("scorer", flat=True)) == {
        "finetuned"}
    # A calibration started before the predictions were kept compares with its overall figure, as before.
    before = finish(overall=0.9, on_held=None, finetuned=0.8)
    assert before.scorer == "ridge" and "(0.90 on all your grades)" in before.scorer_reason
    # So does one whose dataset file is gone: it still finishes.
    from mlcore.specs import artifact_dir

    artifact_dir(dataset.path).unlink()
    lost = finish(overall=0.9, on_held=target, finetuned=0.8)
    assert lost.state == "done" and "(0.90 on all your grades)" in lost.scorer_reason


def test_suggestions_prefer_essays_unlike_the_graded_ones(assignment, make_essay, teacher, embedder):
    graded_set(assignment, make_essay, teacher, 3)
    near = make_essay(assignment, essay_of_quality(1, 0) + " Again.")
    far = make_essay(assignment, "Volcanoes erupt when magma pressure rises beneath the crust of the earth.")
    for v in (near, far):
        grading.version_grade(version_id=v.pk)
    picks = calibration.grading_suggestions(assignment=assignment, limit=2)
    assert [p.pk for p in picks][0] == far.pk and {p.pk for p in picks} == {near.pk, far.pk}
    assert Calibration.objects.count() == 0


def test_a_calibration_fitted_before_the_middle_layer_scores_on_its_own_columns(assignment, make_essay, teacher,
                                                                               embedder):
    graded_set(assignment, make_essay, teacher, 8)
    versions = calibration.graded_versions(assignment)
    rows = np.asarray([[*v.embedding, *grading.text_features(v.text, prompt=assignment.prompt)] for v in versions])
    y = np.asarray([float(v.grade.teacher_score) for v in versions])
    old = calibration.ridge_select(rows, y, embed_dims=32, lo=1, hi=6)  # as stored before: no "middle"
    Calibration.objects.create(assignment=assignment, state=Calibration.State.DONE, n_graded=8, qwk=0.9,
                               rmse=0.5, ridge=old, scorer=Calibration.Scorer.RIDGE)
    essay = make_essay(assignment, essay_of_quality(4, 41))

    grade = grading.version_grade(version_id=essay.pk)

    essay.refresh_from_db()
    result = grading.fb.essay_feedback(essay.text, prompt=assignment.prompt, rubric=assignment.rubric)
    expected = grading.ridge_predict(old, np.asarray([[*essay.embedding, *grading.text_features(essay.text,
                                                                                                  result.items)]]))
    assert grade.scorer == "ridge" and grade.raw_score == pytest.approx(float(expected[0]), abs=1e-4)
    with_middle = np.asarray([[*essay.embedding, *essay.middle_embedding,
                               *grading.text_features(essay.text, result.items)]])
    assert float(grading.ridge_predict(old, with_middle)[0]) != pytest.approx(grade.raw_score, abs=1e-4)


def test_versions_embedded_before_the_middle_layer_get_it_and_keep_their_embedding(assignment, make_essay,
                                                                                  embedder):
    old, fresh = make_essay(assignment, essay_of_quality(3, 1)), make_essay(assignment, essay_of_quality(5, 2))
    kept = [0.5] * 32  # not what the tiny encoder gives: proves the stored embedding is not recomputed
    type(old).objects.filter(pk=old.pk).update(embedding=kept)
    old.refresh_from_db()

    grading.versions_embed([old, fresh])

    old.refresh_from_db()
    fresh.refresh_from_db()
    assert old.embedding == kept and len(old.middle_embedding) == 32
    (last, middle), = grading.essay_vectors([fresh.text])
    assert fresh.embedding == last and fresh.middle_embedding == middle and last != middle
    assert np.linalg.norm(middle) == pytest.approx(1, abs=1e-5)


def test_agreement_on_rows_reads_each_rows_line_and_needs_three_essays():
    predictions = [1, 2, 3, 4, 5, 6]
    rows = [{"line": 2, "target": 2.0}, {"line": 4, "target": 4.0}, {"line": 6, "target": 1.0}]
    assert calibration.agreement_on_rows(predictions, rows, lo=1, hi=6) == pytest.approx(
        calibration.metrics.quadratic_weighted_kappa([2, 4, 1], [2, 4, 6], 1, 6), abs=1e-4)
    # a line the predictions do not reach (or no line) is skipped; two essays are too few to compare on
    assert calibration.agreement_on_rows(predictions, [*rows[:2], {"line": 9, "target": 3}, {"target": 3}],
                                         lo=1, hi=6) is None


def test_with_a_tutor_lm_the_calibration_reads_its_middle_layer_and_scoring_builds_the_same_row(
        assignment, make_essay, teacher, embedder, tutor_lm):
    graded_set(assignment, make_essay, teacher, 8)
    cal = calibration.calibration_start(assignment=assignment, user=teacher)

    assert calibration.calibration_run(calibration_id=cal.pk) == "done"

    cal.refresh_from_db()
    # The rows: the encoder's two layers (32 each), the tiny LM's middle layer (32) and the 13 text features.
    assert cal.ridge["lm"] == tutor_lm.pk and len(cal.ridge["coef"]) == 32 + 32 + 32 + 13
    assert cal.ridge["lm_tokens"] == grading.ESSAY_LM_TOKENS == 1024
    assert cal.ridge["embed_dims"] == 96 and "a language model's reading" in cal.scorer_reason
    for version in calibration.graded_versions(assignment):
        assert version.lm_version_id == tutor_lm.pk and np.linalg.norm(version.lm_embedding) == pytest.approx(1, 1e-4)
        assert version.lm_tokens == 1024
    essay = make_essay(assignment, essay_of_quality(5, 41))

    grade = grading.version_grade(version_id=essay.pk)

    essay.refresh_from_db()
    (expected_lm,) = grading.ml.read_middle([essay.text], version=tutor_lm, max_length=1024)
    assert essay.lm_version_id == tutor_lm.pk and essay.lm_embedding == pytest.approx(expected_lm, abs=1e-6)
    result = grading.fb.essay_feedback(essay.text, prompt=assignment.prompt, rubric=assignment.rubric)
    row = [*essay.embedding, *essay.middle_embedding, *essay.lm_embedding, *grading.text_features(essay.text,
                                                                                                    result.items)]
    assert grade.scorer == "ridge" and grade.raw_score == pytest.approx(
        float(grading.ridge_predict(cal.ridge, np.asarray([row]))[0]), abs=1e-4)


def test_with_essay_lm_off_the_calibration_reads_no_language_model(assignment, make_essay, teacher, embedder,
                                                                   tutor_lm, settings):
    settings.EDUCATION_ESSAY_LM = False
    graded_set(assignment, make_essay, teacher, 8)
    cal = calibration.calibration_start(assignment=assignment, user=teacher)

    calibration.calibration_run(calibration_id=cal.pk)

    cal.refresh_from_db()
    assert "lm" not in cal.ridge and len(cal.ridge["coef"]) == 32 + 32 + 13
    assert all(v.lm_embedding is None for v in calibration.graded_versions(assignment))


def test_a_calibration_whose_language_model_was_removed_scores_with_the_baseline_and_says_so(
        assignment, make_essay, teacher, embedder, tutor_lm):
    graded_set(assignment, make_essay, teacher, 8)
    cal = calibration.calibration_start(assignment=assignment, user=teacher)
    calibration.calibration_run(calibration_id=cal.pk)
    ModelVersion.objects.filter(pk=tutor_lm.pk).delete()
    essay = make_essay(assignment, essay_of_quality(5, 41))

    grade = grading.version_grade(version_id=essay.pk)

    assert grade.scorer == "baseline" and grade.needs_review
    assert any("language model the calibration read essays with was removed" in r for r in grade.review_reasons)


def test_a_calibration_that_read_another_number_of_tokens_scores_with_the_baseline_and_says_so(
        assignment, make_essay, teacher, embedder, tutor_lm):
    graded_set(assignment, make_essay, teacher, 8)
    cal = calibration.calibration_start(assignment=assignment, user=teacher)
    calibration.calibration_run(calibration_id=cal.pk)
    assert grading.version_grade(version_id=make_essay(assignment, essay_of_quality(5, 41)).pk).scorer == "ridge"
    # As a calibration fitted before the length was recorded (it read 384 tokens): its rows are not today's.
    cal.refresh_from_db()
    cal.ridge = {k: v for k, v in cal.ridge.items() if k != "lm_tokens"}
    cal.save(update_fields=["ridge"])

    grade = grading.version_grade(version_id=make_essay(assignment, essay_of_quality(5, 42)).pk)

    assert grade.scorer == "baseline" and grade.needs_review
    assert any("now reads them differently: calibrate again" in r for r in grade.review_reasons)


def test_a_reading_of_another_length_is_read_again(assignment, make_essay, embedder, tutor_lm):
    version = make_essay(assignment, essay_of_quality(5, 7))
    grading.versions_embed([version], tutor_lm)
    version.refresh_from_db()
    read = list(version.lm_embedding)
    assert version.lm_tokens == 1024 and read == pytest.approx(
        grading.ml.read_middle([version.text], version=tutor_lm, max_length=1024)[0], abs=1e-6)
    marker = [1.0] + [0.0] * (len(read) - 1)  # a stored reading unlike any the LM gives
    EssayVersion.objects.filter(pk=version.pk).update(lm_embedding=marker)
    version.refresh_from_db()

    grading.versions_embed([version], tutor_lm)  # the same length: what is stored is kept
    version.refresh_from_db()
    assert version.lm_embedding == marker
    EssayVersion.objects.filter(pk=version.pk).update(lm_tokens=384)  # as migration 0014 marks older readings
    version.refresh_from_db()

    grading.versions_embed([version], tutor_lm)

    version.refresh_from_db()
    assert version.lm_tokens == 1024 and version.lm_embedding == pytest.approx(read, abs=1e-6)
def test_a_new_language_model_reads_again_the_versions_another_one_read(assignment, make_essay, embedder, tutor_lm,
                                                                        tiny_lm_dir):
    from mlcore import services

    version = make_essay(assignment, essay_of_quality(4, 3))
    grading.versions_embed([version], tutor_lm)
    first = list(version.lm_embedding)
    other = services.model_version_register(task=Task.TUTOR, family="causal_lm", base_spec=str(tiny_lm_dir))

    grading.versions_embed([version], other)

    version.refresh_from_db()
    assert version.lm_version_id == other.pk and version.lm_embedding == pytest.approx(first, abs=1e-6)
    grading.versions_embed([version], None)  # no language model: what is stored stays
    version.refresh_from_db()
    assert version.lm_version_id == other.pk

"""Scoring an essay version: range, traits, confidence, review flags, idempotence; submissions."""

import json

import numpy as np
import pytest

from education.models import Calibration, EssayVersion, Grade
from education.services import grading
from education.services.calibration import cross_validate, ridge_select, stretch_select

GOOD = ("Phones should stay out of lessons. They pull attention away from the teacher.\n\n"
        "However, phones can help in emergencies, so students could keep them in lockers.\n\n"
        "In conclusion, a locker rule keeps classes calm while families stay in touch.")
WEAK = "i think phones is good becuase alot of peple use them and the the teacher dont care"


def test_version_grade_scores_in_range_with_traits_and_feedback(assignment, make_essay, embedder):
    version = make_essay(assignment, WEAK)
    grade = grading.version_grade(version_id=version.pk)
    assert assignment.score_min <= grade.score <= assignment.score_max
    assert set(grade.trait_scores) == {"Ideas", "Organization", "Conventions"}
    assert all(assignment.score_min <= v <= assignment.score_max for v in grade.trait_scores.values())
    assert grade.scorer == "baseline" and grade.confidence == grading.BASELINE_CONFIDENCE
    assert grade.needs_review and "not calibrated" in grade.review_reasons[0]
    flagged = {(i["kind"], version.text[i["start"] : i["end"]]) for i in grade.feedback}
    assert {("spelling", "becuase"), ("grammar", "alot"), ("grammar", "the the"), ("capitalization", "i")} <= flagged
    assert grade.statistics["words"] == 17
    version.refresh_from_db()
    assert version.grading_state == "done" and len(version.embedding) == len(version.middle_embedding) == 32


def test_grading_loads_one_embedding_model_for_prompt_and_essay(assignment, make_essay, embedder):
    from mlcore import api as ml
    from mlcore import runtime

    runtime.cache.clear()
    grading.version_grade(version_id=make_essay(assignment, GOOD).pk)
    assert {key[2] for key in runtime.cache.keys() if key[0] == "encoder"} == {"middle_embedder"}
    # the prompt's vector from that graph is the plain embedder's
    prompt = grading.scoring_context(assignment).prompt_embedding
    assert prompt == pytest.approx(ml.embed([assignment.prompt])[0], abs=1e-5)


def test_version_grade_runs_once(assignment, make_essay, embedder):
    version = make_essay(assignment, GOOD)
    first = grading.version_grade(version_id=version.pk)
    second = grading.version_grade(version_id=version.pk)
    assert first.pk == second.pk and Grade.objects.count() == 1
    assert EssayVersion.objects.get(pk=version.pk).grading_attempts == 1


def test_baseline_prefers_longer_cleaner_text():
    short = grading.baseline_score(grading.text_features(WEAK), 1, 6)
    long = grading.baseline_score(grading.text_features(GOOD * 3), 1, 6)
    assert 1 <= short < long <= 6


def test_trait_scores_follow_feedback_density(assignment):
    items = [{"kind": "spelling"}] * 3 + [{"kind": "transition"}]  # 100 words: conventions 3/100, organization 1/100
    assert grading.trait_scores(4, items, 100, assignment) == {"Ideas": 4, "Organization": 4, "Conventions": 3}
    items = [{"kind": "spelling"}] * 5
    assert grading.trait_scores(1, items, 100, assignment) == {"Ideas": 1, "Organization": 1, "Conventions": 1}
    # no organisation or conventions feedback in a long essay: one point up, but never above the range
    assert grading.trait_scores(6, [], 200, assignment) == {"Ideas": 6, "Organization": 6, "Conventions": 6}
    assert grading.trait_scores(4, [], 200, assignment) == {"Ideas": 4, "Organization": 5, "Conventions": 5}


def test_confidence_formula(assignment):
    cal = Calibration(assignment=assignment, qwk=0.8, rmse=0.5, n_graded=20)
    assert grading.confidence_for(cal, 0.9, 1, 6) == pytest.approx(0.5 * 0.8 + 0.5 * (1 - 0.5 / 5))
    assert grading.confidence_for(cal, 0.2, 1, 6) == pytest.approx(0.8 * (0.5 * 0.8 + 0.5 * 0.9), abs=1e-3)
    few = Calibration(assignment=assignment, qwk=0.8, rmse=0.5, n_graded=5)
    assert grading.confidence_for(few, 0.9, 1, 6) == pytest.approx(0.5 * 0.85, abs=1e-3)
    assert grading.confidence_for(None, None, 1, 6) == grading.BASELINE_CONFIDENCE


def test_off_prompt_and_near_duplicate_are_flagged(assignment, make_essay, embedder):
    original = make_essay(assignment, GOOD)
    grading.version_grade(version_id=original.pk)
    copy = make_essay(assignment, GOOD.replace("in touch.", "in touch, every day."))
    grading.versions_embed([copy])
    context = grading.scoring_context(assignment)
    context.prompt_embedding = [-x for x in copy.embedding]  # pointing away from the essay: cosine −1
    values = grading.grade_values(copy, context)
    assert values["duplicate_of"] == original
    assert values["prompt_similarity"] == pytest.approx(-1.0, abs=1e-3)
    assert any("off-prompt" in r for r in values["review_reasons"])
    assert any("Nearly identical" in r for r in values["review_reasons"])
    other = make_essay(assignment, WEAK)
    grading.versions_embed([other])
    assert grading.grade_values(other, grading.scoring_context(assignment))["duplicate_of"] is None


def test_ridge_cross_validation_recovers_a_linear_grade():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 5))
    y = np.clip(np.round(3.5 + x[:, 0] * 1.2), 1, 6)
    cv = cross_validate(x, y, lo=1, hi=6, folds=5)
    assert cv["folds"] == 5 and cv["qwk"] > 0.8 and len(cv["predictions"]) == 30
    assert all(1 <= p <= 6 for p in cv["predictions"])
    model = grading.ridge_fit(x, y, alpha=1.0)
    assert grading.clip_round(float(grading.ridge_predict(model, x[:1])[0]), 1, 6) in range(1, 7)
    assert grading.clip_round(9.7, 1, 6) == 6 and grading.clip_round(-3, 1, 6) == 1


def test_stretch_widens_predictions_that_bunch_around_the_mean_grade():
    y = np.asarray([0, 1, 2, 3] * 10, dtype=float)
    shrunk = y.mean() + 0.55 * (y - y.mean())  # every prediction rounds to 1 or 2: ridge's pull toward the mean
    assert {grading.clip_round(p, 0, 3) for p in shrunk} == {1, 2}
    stretch = stretch_select(shrunk, y, lo=0, hi=3)
    assert stretch == 1.25  # the smallest factor that gives every essay its grade back
    assert [grading.clip_round(y.mean() + stretch * (p - y.mean()), 0, 3) for p in shrunk] == y.tolist()
    # Predictions already spread over the range keep their spread: the smallest stretch wins a tie.
    assert stretch_select(y + 0.1, y, lo=0, hi=3) == 1.0


def test_ridge_select_keeps_the_stretch_with_the_model_and_predict_applies_it():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 4))
    y = np.clip(np.round(1.5 + x[:, 0] + 0.6 * rng.normal(size=60)), 0, 3)
    plain = ridge_select(x, y, embed_dims=0)
    model = ridge_select(x, y, embed_dims=0, lo=0, hi=3)
    assert "stretch" not in plain and model["stretch"] > 1.0
    raw = grading.ridge_predict(plain, x)
    assert np.allclose(grading.ridge_predict(model, x), y.mean() + model["stretch"] * (raw - y.mean()))


def test_the_kernel_part_joins_when_the_grade_is_not_linear_in_the_features():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(120, 3))
    y = np.clip(np.round(3 - 1.2 * x[:, 0] ** 2 + 0.2 * rng.normal(size=120)), 0, 3)  # highest in the middle
    model = ridge_select(x, y, embed_dims=0, lo=0, hi=3)
    linear = grading.ridge_fit(x, y, alpha=model["alpha"], embed_dims=0, embed_weight=model["embed_weight"])
    assert "kernel" in model
    fresh = rng.normal(size=(200, 3))
    truth = np.clip(np.round(3 - 1.2 * fresh[:, 0] ** 2), 0, 3)
    error = lambda m: float(np.abs(grading.ridge_predict(m, fresh) - truth).mean())  # noqa: E731
    assert error(model) < 0.75 * error(linear)
    # The model is stored as JSON on the calibration: it predicts the same after the round trip.
    stored = json.loads(json.dumps(model))
    assert np.allclose(grading.ridge_predict(stored, fresh), grading.ridge_predict(model, fresh), atol=1e-3)


def test_a_column_constant_but_for_rounding_noise_does_not_break_the_kernel():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(60, 3))
    y = np.clip(np.round(3 - 1.2 * x[:, 0] ** 2), 0, 3)
    noisy = np.hstack([x, 1.0 + 3e-9 * rng.normal(size=(60, 1))])  # e.g. the norm of a one-chunk mean embedding
    model = grading.kernel_fit(noisy, y, alpha=0.3, embed_dims=0, embed_weight=1.0, width=1.0)
    clean = grading.kernel_fit(x, y, alpha=0.3, embed_dims=0, embed_weight=1.0, width=1.0)
    fresh = rng.normal(size=(20, 3))
    with_noise = grading.kernel_deviation(model, np.hstack([fresh, np.ones((20, 1))]))
    assert np.isfinite(with_noise).all()
    assert np.allclose(with_noise, grading.kernel_deviation(clean, fresh), atol=1e-6)


def test_a_linear_grade_or_too_few_essays_keep_the_plain_ridge():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(7, 4))
    assert "kernel" not in ridge_select(x, x[:, 0], embed_dims=0, lo=-3, hi=3)  # under KERNEL_MIN_ESSAYS
    x = rng.normal(size=(80, 4))
    assert "kernel" not in ridge_select(x, 2 * x[:, 0] - x[:, 1], embed_dims=0)  # ridge is exact: nothing to add


def test_a_model_fitted_before_more_text_features_reads_the_columns_it_knows():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(40, 5))
    y = x[:, 0] + 0.1 * rng.normal(size=40)
    old = ridge_select(x, y, embed_dims=0)
    wider = np.hstack([x, rng.normal(size=(40, 6))])  # the rows as feature_row writes them now
    assert np.allclose(grading.ridge_predict(old, wider), grading.ridge_predict(old, x))
    assert len(grading.text_features("One sentence here, with a comma.")) == 13


def test_submit_and_resubmit(assignment, student, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        first = grading.essay_submit(assignment=assignment, student=student, text="  My first   try.  ")
    assert len(callbacks) == 1 and first.number == 1 and first.text == "My first try."
    second = grading.essay_submit(assignment=assignment, student=student, text="My second try.")
    assert second.number == 2 and second.essay_id == first.essay_id
    assert second.essay.text == "My second try."
    with pytest.raises(grading.GradingError, match="same text"):
        grading.essay_submit(assignment=assignment, student=student, text="My second try.")


@pytest.mark.parametrize("text, message", [
    ("   \n\t ", "empty"),
    ("word " * 20_001, "limit is 20,000"),
    ("bad\x00bytes", "binary"),
])
def test_bad_submissions_write_nothing(assignment, student, text, message):
    with pytest.raises(grading.GradingError, match=message):
        grading.essay_submit(assignment=assignment, student=student, text=text)
    assert not EssayVersion.objects.exists()


def test_only_enrolled_students_submit(assignment, other_student):
    with pytest.raises(grading.GradingError, match="not enrolled"):
        grading.essay_submit(assignment=assignment, student=other_student, text="Hello there.")


@pytest.mark.parametrize("data, message", [
    (b"\xff\xfeh\x00i\x00", None),
    ("caf\u00e9".encode("cp1252"), "not UTF-8"),
    (b"\x89PNG\x00\x00", "binary"),
])
def test_upload_decoding(data, message):
    if message is None:
        assert grading.upload_decode(data) == "hi"
    else:
        with pytest.raises(grading.GradingError, match=message):
            grading.upload_decode(data)


def test_ridge_dual_form_matches_the_primal_solution():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(8, 20)), rng.normal(size=8)
    model = grading.ridge_fit(x, y, alpha=2.0, embed_dims=16, embed_weight=0.3)  # n < d: dual form
    scale = x.std(axis=0)
    weights = np.r_[np.full(16, 0.3), np.ones(4)]
    z = (x - x.mean(axis=0)) / scale * weights
    primal = np.linalg.solve(z.T @ z + 2.0 * np.eye(20), z.T @ (y - y.mean()))
    assert np.allclose(grading.ridge_predict(model, x), z @ primal + y.mean())


def test_a_version_left_running_by_a_lost_worker_is_graded_only_on_the_ledgers_rerun(assignment, make_essay,
                                                                                      embedder):
    version = make_essay(assignment, GOOD)
    EssayVersion.objects.filter(pk=version.pk).update(grading_state="running", grading_attempts=1)
    assert grading.version_grade(version_id=version.pk) is None  # a stray second delivery does not take it over
    # The task ledger handed this call the lost worker's run (its attempts are counted and capped there).
    grade = grading.version_grade(version_id=version.pk, rerun=True)
    assert grade is not None and EssayVersion.objects.get(pk=version.pk).grading_attempts == 2
    assert grading.version_grade(version_id=version.pk, rerun=True) == grade  # done: never scored twice
    assert Grade.objects.filter(version=version).count() == 1


def test_a_version_the_ledger_gave_up_on_fails_with_a_reason(assignment, make_essay):
    version = make_essay(assignment, GOOD)
    EssayVersion.objects.filter(pk=version.pk).update(grading_state="running", grading_attempts=3)
    assert grading.version_grading_gave_up(version_id=version.pk, attempts=3)
    version.refresh_from_db()
    assert (version.grading_state, version.grading_error) == (
        "failed", "Scoring was given up: the worker scoring this version stopped 3 times.")
    assert not grading.version_grading_gave_up(version_id=version.pk, attempts=3)  # only pending or running ones


def test_calibration_and_scoring_count_errors_the_same_way():
    """A word of the prompt is not a spelling error when fitting the scorer either, as it is not when scoring."""
    from education.services import feedback
    from education.services.grading import text_features

    prompt = "Should the town of Quorbel build a zorblax by the river?"
    text = "I think the zorblax is a good idea. The zorblax would help the town and the river."
    with_prompt = text_features(text, prompt=prompt)
    scoring = text_features(text, feedback.essay_feedback(text, prompt=prompt).items)
    assert with_prompt == scoring
    assert text_features(text)[5] > with_prompt[5]  # without the prompt, "zorblax" counts as misspelt

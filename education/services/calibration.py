"""Calibration: fit an assignment's scorer to the teacher's grades and measure agreement by cross-validation.

The ridge scorer (embeddings + text features) is always fitted and cross-validated (k-fold QWK over the
teacher-graded essays). With enough grades the encoder is also fine-tuned through mlcore on the `ml` queue;
when that job finishes its version is activated for the assignment's scope, and it becomes the scorer only if
its QWK on its validation essays beats the ridge's cross-validated QWK on those same essays (with few essays it
rarely does, and the page says so).
"""

import json
import logging
from datetime import timedelta

import numpy as np
from celery import current_app
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core.services import task_run_enqueue
from education.models import Assignment, Calibration, EssayVersion
from education.services.grading import (
    ESSAY_LM_TOKENS,
    GradingError,
    assignment_rescore,
    clip_round,
    essay_lm,
    feature_row,
    kernel_fit,
    kernel_solve,
    kernel_standardise,
    ridge_fit,
    ridge_predict,
    squared_distances,
    versions_embed,
)
from mlcore import api as ml
from mlcore import metrics
from mlcore.data import DataError

log = logging.getLogger(__name__)

CALIBRATE_TASK = "education.calibrate"
MIN_GRADED = 10  # fewer teacher-graded essays than this and the page says the scorer is not reliable yet
MIN_QWK = 0.5
MAX_FOLDS = 5
FINETUNE_PARAMS = {"epochs": 4, "batch_size": 8, "learning_rate": 4e-5, "max_length": 384, "patience": 2, "seed": 7}
FINETUNE_MIN_VALIDATION = 3  # a fine-tuned QWK measured on fewer validation essays is not trusted


def graded_versions(assignment: Assignment) -> list[EssayVersion]:
    """Essay versions of the assignment that carry a teacher grade, oldest first."""
    return list(EssayVersion.objects.filter(essay__assignment=assignment, grade__teacher_score__isnull=False)
                .select_related("grade").order_by("pk"))


RIDGE_GRID = [(alpha, weight) for alpha in (1.0, 10.0) for weight in (0.05, 0.2, 0.5, 1.0)]
STRETCH_GRID = [round(1.0 + 0.05 * i, 2) for i in range(17)]  # 1.0 .. 1.8
# Kernel ridge grid: (embedding weight, bandwidth as a multiple of the median squared distance, alpha).
KERNEL_GRID = [(weight, width, alpha) for weight in (0.2, 0.5, 1.0) for width in (0.5, 1.0, 2.0)
               for alpha in (0.1, 0.3, 1.0)]
KERNEL_MIN_ESSAYS = 8  # fewer graded essays and the inner folds are too small to choose a kernel


def ridge_select(x: np.ndarray, y: np.ndarray, *, embed_dims: int, lo: int | None = None,
                 hi: int | None = None) -> dict:
    """Fit ridge with the (alpha, embedding weight) of RIDGE_GRID that predicts best in an inner 4-fold CV (RMSE).

    A kernel ridge (`kernel_select`) joins it, the two predictions averaged, when that average predicts better
    in the same inner folds. With the score range (`lo`, `hi`) the model also gets a stretch (see
    `stretch_select`), chosen on the same inner held-out predictions.
    """
    n = len(y)
    folds = max(2, min(4, n))
    best, best_error, best_held_out = RIDGE_GRID[0], float("inf"), np.full(n, float(y.mean()))
    for alpha, weight in RIDGE_GRID:
        error, held_out = 0.0, np.full(n, float(y.mean()))
        for fold in range(folds):
            held = np.arange(n) % folds == fold
            if held.all() or not held.any():
                continue
            model = ridge_fit(x[~held], y[~held], alpha=alpha, embed_dims=embed_dims, embed_weight=weight)
            held_out[held] = ridge_predict(model, x[held])
            error += float(((held_out[held] - y[held]) ** 2).sum())
        if error < best_error - 1e-9:
            best, best_error, best_held_out = (alpha, weight), error, held_out
    model = ridge_fit(x, y, alpha=best[0], embed_dims=embed_dims, embed_weight=best[1])
    kernel = kernel_select(x, y, embed_dims=embed_dims, folds=folds)
    if kernel is not None:
        blended = (best_held_out + kernel[1]) / 2
        if float(((blended - y) ** 2).sum()) < best_error - 1e-9:
            model["kernel"], best_held_out = kernel[0], blended
    if lo is not None and hi is not None:
        model["stretch"] = stretch_select(best_held_out, y, lo=lo, hi=hi)
    return model


def ridge_description(model: dict) -> str:
    """The scorer as the calibration page names it."""
    model = model or {}
    reads = "embeddings, a language model's reading" if "lm" in model else "embeddings"
    kernel = ", averaged with a kernel ridge that fits what a linear model cannot" if "kernel" in model else ""
    return f"Ridge regression over {reads} and text features{kernel}"


def kernel_select(x: np.ndarray, y: np.ndarray, *, embed_dims: int, folds: int) -> tuple[dict, np.ndarray] | None:
    """The kernel ridge of KERNEL_GRID that predicts best in the inner folds (those of ridge_select), fitted on
    all rows, with its inner held-out predictions; None below KERNEL_MIN_ESSAYS.

    The columns are scaled once on all rows (no grade is used for that); each fold's bandwidth comes from its own
    training rows, as `kernel_fit` does.
    """
    n = len(y)
    if n < KERNEL_MIN_ESSAYS:
        return None
    best, best_error, best_held_out = None, float("inf"), None
    for weight in sorted({w for w, _, _ in KERNEL_GRID}):
        _, z = kernel_standardise(x, embed_dims=embed_dims, embed_weight=weight)
        d2 = squared_distances(z, z)
        medians = [float(np.median(d2[np.ix_(np.arange(n) % folds != f, np.arange(n) % folds != f)]))
                   for f in range(folds)]
        for _, width, alpha in [g for g in KERNEL_GRID if g[0] == weight]:
            held_out = np.zeros(n)
            for fold in range(folds):
                held = np.arange(n) % folds == fold
                k = np.exp(-d2 / (width * medians[fold] or 1.0))
                dual = kernel_solve(k[np.ix_(~held, ~held)], y[~held], alpha)
                held_out[held] = y[~held].mean() + k[np.ix_(held, ~held)] @ dual
            error = float(((held_out - y) ** 2).sum())
            if error < best_error - 1e-9:
                best, best_error, best_held_out = (weight, width, alpha), error, held_out
    weight, width, alpha = best
    return kernel_fit(x, y, alpha=alpha, embed_dims=embed_dims, embed_weight=weight, width=width), best_held_out


def stretch_select(predictions: np.ndarray, y: np.ndarray, *, lo: int, hi: int) -> float:
    """The factor that widens held-out predictions around the mean grade to the best QWK (the smallest on ties).

    Ridge pulls its predictions toward the mean, so rounded scores bunch in the middle of the range: on ASAP,
    widening them is worth 0.03-0.06 QWK on the prompts where that bunching is worst (docs/benchmarks.md).
    """
    center = float(y.mean())
    gold = [int(v) for v in y]

    def agreement(stretch: float) -> float:
        rounded = [clip_round(center + stretch * (p - center), lo, hi) for p in predictions]
        return metrics.quadratic_weighted_kappa(gold, rounded, lo, hi)

    return max(STRETCH_GRID, key=agreement)


def cross_validate(x: np.ndarray, y: np.ndarray, *, lo: int, hi: int, folds: int, embed_dims: int = 0) -> dict:
    """k-fold: select and fit ridge on k-1 folds, predict the held-out one; QWK and RMSE over all held-out rows.

    The hyper-parameters are chosen inside each training fold, so the held-out figures are honest. Fold of row i is
    i mod k (rows come in a stable order), so the same grades give the same figures.
    """
    n = len(y)
    folds = max(2, min(folds, n))
    predictions = np.zeros(n)
    for fold in range(folds):
        held = np.arange(n) % folds == fold
        model = ridge_select(x[~held], y[~held], embed_dims=embed_dims, lo=lo, hi=hi)
        predictions[held] = ridge_predict(model, x[held])
    rounded = [clip_round(p, lo, hi) for p in predictions]
    return {
        "qwk": metrics.quadratic_weighted_kappa([int(v) for v in y], rounded, lo, hi),
        "rmse": metrics.rmse([float(v) for v in y], [float(p) for p in predictions]),
        "folds": folds, "predictions": rounded,
    }


def calibration_start(*, assignment: Assignment, user=None, finetune: bool = True) -> Calibration:
    """Queue a calibration of the assignment's scorer on the ml workers (one at a time per assignment)."""
    n = EssayVersion.objects.filter(essay__assignment=assignment, grade__teacher_score__isnull=False).count()
    if n < 3:
        raise GradingError(f"Grade at least 3 essays before calibrating ({n} graded so far).")
    try:
        with transaction.atomic():
            calibration = Calibration.objects.create(assignment=assignment, requested_by=user, finetune=finetune)
            # On the task ledger: a lost worker or a lost message cannot leave it queued or running for good
            # (which would also refuse every later calibration of the assignment).
            task_run_enqueue(task=CALIBRATE_TASK, args=[calibration.pk])
    except IntegrityError as exc:
        raise GradingError("A calibration of this assignment is already running.") from exc
    return calibration


def calibration_run(*, calibration_id: int, rerun: bool = False) -> str:
    """Fit and cross-validate the ridge scorer; start the encoder fine-tune when asked and there are enough grades.

    Runs once (claims the queued row; with `rerun`, the ledger's re-run of a lost worker's run, a running one too).
    Returns the state it leaves the calibration in.
    """
    states = [Calibration.State.QUEUED, Calibration.State.RUNNING] if rerun else [Calibration.State.QUEUED]
    if not Calibration.objects.filter(pk=calibration_id, state__in=states).update(state=Calibration.State.RUNNING):
        return "claimed elsewhere"
    calibration = Calibration.objects.select_related("assignment").get(pk=calibration_id)
    assignment = calibration.assignment
    try:
        versions = graded_versions(assignment)
        lm = essay_lm()
        versions_embed(versions, lm)
        x = np.asarray([feature_row(v, prompt=assignment.prompt, lm=lm is not None) for v in versions])
        y = np.asarray([float(v.grade.teacher_score) for v in versions])
        lo, hi = assignment.score_min, assignment.score_max
        embed_dims = len(versions[0].embedding) + len(versions[0].middle_embedding) + (
            len(versions[0].lm_embedding) if lm is not None else 0)
        cv = cross_validate(x, y, lo=lo, hi=hi, folds=MAX_FOLDS, embed_dims=embed_dims)
        calibration.n_graded, calibration.folds = len(versions), cv["folds"]
        calibration.qwk, calibration.rmse = round(cv["qwk"], 4), round(cv["rmse"], 4)
        calibration.cv_predictions = cv["predictions"]  # in `versions` order: the fine-tune's dataset lines
        # "middle": the rows hold the middle layer after the embedding; "lm": then the middle layer of that language
        # model version, read over "lm_tokens" tokens (scoring builds the same row).
        calibration.ridge = {**ridge_select(x, y, embed_dims=embed_dims, lo=lo, hi=hi), "middle": True,
                             **({"lm": lm.pk, "lm_tokens": ESSAY_LM_TOKENS} if lm is not None else {})}
        calibration.scorer = Calibration.Scorer.RIDGE
        if calibration.finetune and len(versions) >= MIN_GRADED:
            try:
                return _finetune_start(calibration, versions)
            except (ml.RegistryError, DataError) as exc:
                calibration.scorer_reason = (f"{ridge_description(calibration.ridge)}: the encoder "
                                             f"fine-tune could not start ({exc}).")
                _finish(calibration)
                return Calibration.State.DONE
        calibration.scorer_reason = (
            f"{ridge_description(calibration.ridge)}: "
            + (f"fewer than {MIN_GRADED} graded essays, too few to fine-tune the encoder."
               if len(versions) < MIN_GRADED else "no encoder fine-tune was asked for.")
        )
        _finish(calibration)
    except Exception as exc:
        log.exception("calibration %s failed", calibration_id)
        Calibration.objects.filter(pk=calibration_id).update(
            state=Calibration.State.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], finished=timezone.now())
        return Calibration.State.FAILED
    return Calibration.State.DONE


def calibration_gave_up(*, calibration_id: int, attempts: int) -> bool:
    """The ledger gave up on a calibration (its workers were lost each time): fail it, freeing the assignment."""
    return bool(Calibration.objects.filter(
        pk=calibration_id, state__in=[Calibration.State.QUEUED, Calibration.State.RUNNING],
    ).update(state=Calibration.State.FAILED, finished=timezone.now(),
             error=f"The worker calibrating stopped {attempts} time{'s' if attempts != 1 else ''}; calibration was "
                   "given up. Start it again."))


def _finetune_start(calibration: Calibration, versions: list[EssayVersion]) -> str:
    assignment = calibration.assignment
    with transaction.atomic():
        dataset = ml.dataset_create(
            name=f"{assignment.title} — teacher grades ({len(versions)})", kind="regression",
            data=_jsonl(versions), filename=f"assignment-{assignment.pk}-grades.jsonl",
            user=calibration.requested_by, min_chars=1,
        )
        job = ml.start_finetune(ml.Task.ESSAY_SCORE, dataset, scope=assignment.scope,
                                user=calibration.requested_by, **FINETUNE_PARAMS)
        calibration.training_job, calibration.state = job, Calibration.State.TRAINING
        calibration.scorer_reason = "Ridge regression while the encoder fine-tune runs."
        calibration.save()
        transaction.on_commit(lambda: current_app.send_task(
            "education.calibration_finish", args=[calibration.pk], queue="ml", countdown=5))
    return calibration.state


def calibration_finish(*, calibration_id: int) -> str:
    """After the fine-tune job ends: activate its version for the scope and pick the better scorer.

    Returns "waiting" while the job is queued or running (the task retries later), else the final state.
    """
    calibration = Calibration.objects.select_related("assignment", "training_job__result_version").get(
        pk=calibration_id)
    if calibration.state != Calibration.State.TRAINING:
        return calibration.state
    job = calibration.training_job
    if job is None:
        calibration.scorer_reason = "The fine-tune job was deleted; ridge regression is used."
    elif job.is_active:
        return "waiting"
    elif job.state != "succeeded" or job.result_version is None:
        calibration.scorer_reason = (f"The encoder fine-tune {job.state} ({job.error or 'no detail'}); "
                                     "ridge regression over embeddings is used.")
    else:
        version = ml.activate(job.result_version)
        calibration.model_version = version
        report = version.metrics or {}
        qwk = report.get("qwk", report.get("val_qwk"))
        n_val = report.get("n", report.get("val_n", 0)) or 0
        calibration.finetuned_qwk = round(float(qwk), 4) if qwk is not None else None
        ridge_qwk, where = _ridge_on_validation(calibration, job), "on the same essays"
        if ridge_qwk is None:  # a calibration started before its predictions were kept: its overall figure
            ridge_qwk, where = (calibration.qwk if calibration.qwk is not None else -1.0), "on all your grades"
        if finetune_preferred(calibration.finetuned_qwk, n_val, ridge_qwk):
            calibration.scorer = Calibration.Scorer.FINETUNED
            calibration.scorer_reason = (
                f"The fine-tuned encoder agrees better with you (QWK {calibration.finetuned_qwk:.2f} on "
                f"{n_val} held-out essays) than ridge regression (cross-validated QWK {ridge_qwk:.2f} {where}).")
        else:
            shown = f"{calibration.finetuned_qwk:.2f}" if calibration.finetuned_qwk is not None else "not measured"
            calibration.scorer_reason = (
                f"{ridge_description(calibration.ridge)}: its cross-validated QWK ({ridge_qwk:.2f} {where}) is "
                f"not beaten by the fine-tuned encoder (QWK {shown} on {n_val} held-out essays"
                + (", too few to trust" if n_val < FINETUNE_MIN_VALIDATION else "") + ").")
    _finish(calibration)
    return Calibration.State.DONE


def finetune_preferred(finetuned_qwk: float | None, n_validation: int, ridge_qwk: float) -> bool:
    """Whether the fine-tuned encoder scores: checked on enough essays, and agreeing better than ridge on them."""
    return finetuned_qwk is not None and n_validation >= FINETUNE_MIN_VALIDATION and finetuned_qwk > ridge_qwk


def _ridge_on_validation(calibration: Calibration, job) -> float | None:
    """The ridge scorer's cross-validated QWK on the essays the fine-tune was checked on (its validation split).

    The fine-tune's QWK is measured on about a tenth of the grades, which may be easier or harder to score than
    the rest: on ASAP prompt 3 ridge scored 0.79 on those essays and 0.70 on all of them, so comparing the
    fine-tune's 0.76 with the 0.70 picked the scorer that was worse on new essays (docs/benchmarks.md). None when
    the calibration kept no predictions (started before they were kept) or too few essays match.
    """
    if not calibration.cv_predictions or job.dataset_id is None:
        return None
    try:
        rows = ml.dataset_rows(dataset=job.dataset, split="validation")
    except OSError:  # the dataset's file is gone from MLCORE_HOME: decide on the overall figure, never hang
        log.warning("calibration %s: the fine-tune's dataset file cannot be read", calibration.pk, exc_info=True)
        return None
    return agreement_on_rows(calibration.cv_predictions, rows, lo=calibration.assignment.score_min,
                             hi=calibration.assignment.score_max)


def agreement_on_rows(predictions: list[int], rows: list[dict], *, lo: int, hi: int) -> float | None:
    """QWK of `predictions` (one per line of the fine-tune's dataset, line k is predictions[k - 1]) against the
    targets of `rows` (dataset rows: `{"line", "target"}`); None when fewer than FINETUNE_MIN_VALIDATION match."""
    pairs = [(int(round(float(row["target"]))), predictions[row["line"] - 1])
             for row in rows if 1 <= int(row.get("line") or 0) <= len(predictions)]
    if len(pairs) < FINETUNE_MIN_VALIDATION:
        return None
    return round(metrics.quadratic_weighted_kappa([g for g, _ in pairs], [p for _, p in pairs], lo, hi), 4)


FINISH_LOST_AFTER = timedelta(minutes=10)


def calibrations_recover(*, lost_after: timedelta = FINISH_LOST_AFTER) -> list[int]:
    """Finish calibrations still "training" long after their fine-tune ended (beat).

    `education.calibration_finish` polls the job every few seconds; when its message is lost (a restarted
    broker keeps nothing), the calibration would stay "training" and block every later calibration of the
    assignment. A job that ended more than `lost_after` ago (or was deleted) means the poller is gone.
    """
    cutoff = timezone.now() - lost_after
    stuck = Calibration.objects.filter(state=Calibration.State.TRAINING).filter(
        Q(training_job__isnull=True)
        | Q(training_job__finished_at__lt=cutoff) & ~Q(training_job__state__in=ml.TrainingJob.ACTIVE_STATES)
    ).values_list("pk", flat=True)
    return [pk for pk in stuck if calibration_finish(calibration_id=pk) == Calibration.State.DONE]


def _finish(calibration: Calibration) -> None:
    calibration.state, calibration.finished = Calibration.State.DONE, timezone.now()
    calibration.save()
    assignment_rescore(assignment=calibration.assignment)


def _jsonl(versions: list[EssayVersion]) -> bytes:
    return "".join(json.dumps({"text": v.text, "target": v.grade.teacher_score}) + "\n" for v in versions).encode()


def grading_suggestions(*, assignment: Assignment, limit: int = 5) -> list[EssayVersion]:
    """Ungraded latest versions most worth grading next: farthest (in embedding space) from every graded one.

    Greedy max-min: each pick is the essay whose nearest graded-or-picked essay is least similar, so the picks
    also differ from each other. Versions without an embedding yet come last.
    """
    latest = list(
        EssayVersion.objects.filter(essay__assignment=assignment, grade__isnull=False,
                                    grade__teacher_score__isnull=True)
        .select_related("essay__student", "grade").order_by("essay_id", "-number")
    )
    seen, candidates = set(), []
    for v in latest:
        if v.essay_id not in seen:
            seen.add(v.essay_id)
            candidates.append(v)
    anchors = [np.asarray(v.embedding) for v in EssayVersion.objects.filter(
        essay__assignment=assignment, grade__teacher_score__isnull=False, embedding__isnull=False).only("embedding")]
    embedded = [v for v in candidates if v.embedding is not None]
    picks = []
    while embedded and len(picks) < limit:
        def nearest(v):
            vector = np.asarray(v.embedding)
            return max((float(vector @ a) for a in anchors), default=-1.0)

        best = min(embedded, key=lambda v: (nearest(v), v.pk))
        picks.append(best)
        anchors.append(np.asarray(best.embedding))
        embedded.remove(best)
    picks.extend(v for v in candidates if v.embedding is None and len(picks) < limit)
    return picks[:limit]

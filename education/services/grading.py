"""Essay submission, automatic scoring and the teacher's grade/override.

Scoring: the assignment's latest finished Calibration decides the scorer (ridge over embeddings and text
features, or the fine-tuned encoder activated for the assignment's scope); before any calibration a baseline
from text features gives a low-confidence score that is always marked for review.
"""

import logging
import math
import re
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core.services import task_run_enqueue
from education.models import Assignment, Calibration, Essay, EssayVersion, Grade, OverrideLog
from education.services import feedback as fb
from mlcore import api as ml
from mlcore.data import near_duplicate_clusters, normalize_text
from mlcore.models import ModelVersion

log = logging.getLogger(__name__)

MAX_WORDS = 20_000
MAX_CHARS = 200_000
MIN_WORDS = 1
EMBED_CHUNK_WORDS = 150  # MiniLM reads 256 tokens; longer essays are embedded in chunks and averaged
OFF_PROMPT_COSINE = 0.15  # below this cosine to the prompt an essay is treated as off-prompt
NEAR_DUPLICATE_JACCARD = 0.8
LOW_CONFIDENCE = 0.5
BASELINE_CONFIDENCE = 0.2
GRADE_TASK = "education.grade_version"


class GradingError(ValueError):
    """A submission or grade that cannot be accepted; the message says why."""


# --- text features and embeddings ---------------------------------------------------------------


_WORD = re.compile(r"[A-Za-z']+")
BASE_FEATURES = 7  # the features baseline_score reads (the first ones of text_features)


def text_features(text: str, items: list[dict] | None = None, *, prompt: str = "") -> list[float]:
    """Length and lexical features the scorer uses beside the embedding (scaled to similar ranges).

    The first BASE_FEATURES are rates and one length (what the baseline reads); the counts after them (distinct
    words, sentences, characters, long words, commas, squared log length) let the scorer weigh how much was
    written, which the unit-length embedding does not carry: on ASAP they are worth +0.004 dev QWK on average,
    +0.01 on the prompts with the shortest or the longest essays (docs/benchmarks.md).
    `prompt` must be the one scoring passes to the feedback (its words are not spelling errors), so a
    scorer is fitted on the same error counts it is later applied to.
    """
    stats = fb.statistics(text)
    words = max(stats["words"], 1)
    if items is None:
        items = fb.essay_feedback(text, prompt=prompt).items
    errors = sum(1 for i in items if i["kind"] in {"spelling", "grammar", "capitalization"})
    tokens = _WORD.findall(text)
    return [
        math.log1p(words),
        min(stats["words_per_sentence"], 60) / 20,
        stats["type_token_ratio"],
        stats["avg_word_length"] / 5,
        stats["rare_word_share"],
        min(errors * 100 / words, 20) / 5,
        min(stats["paragraphs"], 8) / 4,
        math.log1p(len({t.lower() for t in tokens})),
        math.log1p(stats["sentences"]),
        math.log1p(len(text)),
        math.log1p(sum(len(t) >= 7 for t in tokens)),
        math.log1p(text.count(",")),
        math.log1p(words) ** 2 / 10,
    ]


def _chunks(texts: list[str]) -> tuple[list[str], list[int]]:
    chunks, owners = [], []
    for index, text in enumerate(texts):
        words = text.split()
        pieces = [" ".join(words[i : i + EMBED_CHUNK_WORDS]) for i in range(0, len(words), EMBED_CHUNK_WORDS)]
        for piece in pieces or [text]:
            chunks.append(piece)
            owners.append(index)
    return chunks, owners


def _chunk_means(vectors: list[list[float]], owners: list[int], count: int) -> list[list[float]]:
    """Per text, the normalised mean of its chunks' vectors."""
    vectors, owners = np.asarray(vectors, dtype=float), np.asarray(owners)
    out = []
    for index in range(count):
        mean = vectors[owners == index].mean(axis=0)
        norm = np.linalg.norm(mean)
        out.append((mean / norm if norm else mean).round(6).tolist())
    return out


def essay_vectors(texts: list[str]) -> list[tuple[list[float], list[float]]]:
    """Per text, its unit-length embedding and the embedding model's middle layer, mean-pooled the same way.

    A text longer than EMBED_CHUNK_WORDS is embedded in chunks and gets the normalised mean of their vectors.

    The scorer reads both: on the ASAP dev essays the middle layer beside the last is worth +0.006 QWK
    (docs/benchmarks.md), the surface of the writing that the last layer, tuned for meaning, smooths away.
    """
    chunks, owners = _chunks(texts)
    last, middle = ml.embed_with_middle(chunks)
    return list(zip(_chunk_means(last, owners, len(texts)), _chunk_means(middle, owners, len(texts)), strict=True))


# How many of an essay's tokens the language model reads. 1,024 reads all but the longest ASAP essays whole: +0.002
# test QWK over 384 on the 5 folds, most on the long essays of prompt 8 (docs/benchmarks.md), for two to three times
# a long essay's reading time. Kept with each reading (EssayVersion.lm_tokens) and in a calibration, so a change
# reads the essays again and asks for a new calibration rather than mixing two readings.
ESSAY_LM_TOKENS = 1024
LM_TOKENS_UNRECORDED = 384  # what calibrations fitted before the length was recorded read


def essay_lm() -> ModelVersion | None:
    """The language model a new calibration reads essays with beside the encoder: the tutor's active LM (the
    packaged SmolLM2 out of the box). None when EDUCATION_ESSAY_LM is off or no tutor LM is active; the scorer
    then reads the encoder's layers and the text features only."""
    if not settings.EDUCATION_ESSAY_LM:
        return None
    try:
        return ml.active_version(task=ml.Task.TUTOR)
    except ml.NoActiveVersion:
        return None


def versions_embed(versions: list[EssayVersion], lm: ModelVersion | None = None) -> None:
    """Fill in the embeddings (last and middle layer) of each version missing one (one batched call), and with
    `lm` the language model's middle layer of each version `lm` has not read.

    An embedding already stored is kept (the middle layer is added to versions embedded before it was stored).
    """
    missing = [v for v in versions if v.embedding is None or v.middle_embedding is None]
    for version, (last, middle) in zip(missing, essay_vectors([v.text for v in missing]) if missing else [],
                                       strict=True):
        if version.embedding is None:
            version.embedding = last
        version.middle_embedding = middle
        EssayVersion.objects.filter(pk=version.pk).update(
            embedding=version.embedding, middle_embedding=version.middle_embedding)
    unread = [v for v in versions if lm is not None and (
        v.lm_embedding is None or v.lm_version_id != lm.pk or v.lm_tokens != ESSAY_LM_TOKENS)]
    read = ml.read_middle([v.text for v in unread], version=lm, max_length=ESSAY_LM_TOKENS) if unread else []
    for version, vector in zip(unread, read, strict=True):
        version.lm_embedding, version.lm_version = np.round(vector, 6).tolist(), lm
        version.lm_tokens = ESSAY_LM_TOKENS
        EssayVersion.objects.filter(pk=version.pk).update(lm_embedding=version.lm_embedding, lm_version=lm,
                                                          lm_tokens=ESSAY_LM_TOKENS)


# --- ridge regression -----------------------------------------------------------------------------


def ridge_fit(x: np.ndarray, y: np.ndarray, *, alpha: float = 1.0, embed_dims: int = 0,
              embed_weight: float = 1.0) -> dict:
    """Closed-form ridge on standardised features; returns plain lists so it can be stored as JSON.

    The first `embed_dims` columns (the embedding) are scaled by `embed_weight` after standardisation, which
    penalises them more: with a handful of graded essays, 384 embedding dimensions would otherwise drown the
    few length and error features that carry most of the signal.
    """
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    weights = np.ones(x.shape[1])
    weights[:embed_dims] = embed_weight
    z = (x - mean) / scale * weights
    y_mean = float(y.mean())
    target = y - y_mean
    if z.shape[0] < z.shape[1]:  # fewer essays than features: the dual form solves an n × n system
        coef = z.T @ np.linalg.solve(z @ z.T + alpha * np.eye(z.shape[0]), target)
    else:
        coef = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ target)
    return {"coef": (coef * weights / scale).round(10).tolist(), "intercept": y_mean, "mean": mean.round(8).tolist(),
            "alpha": alpha, "embed_dims": embed_dims, "embed_weight": embed_weight}


def ridge_predict(model: dict, x: np.ndarray) -> np.ndarray:
    """Predicted grades, widened around the mean grade by the model's stretch (1 for models stored without one).

    A model with a kernel part predicts the mean of the two (see `kernel_fit`). Rows may carry more features
    than the model was fitted on (text features added since): it reads the columns it knows, the first ones.
    """
    x = np.asarray(x, dtype=float)[:, : len(model["coef"])]
    deviation = (x - np.asarray(model["mean"])) @ np.asarray(model["coef"])
    if "kernel" in model:
        deviation = (deviation + kernel_deviation(model["kernel"], x)) / 2
    return model["intercept"] + model.get("stretch", 1.0) * deviation


def kernel_standardise(x: np.ndarray, *, embed_dims: int, embed_weight: float) -> tuple[dict, np.ndarray]:
    """The scaling ridge_fit uses (standardised columns, the embedding's scaled by `embed_weight`), and x in it."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-6] = 1.0  # a column constant but for rounding noise must not weigh in every distance
    weights = np.ones(x.shape[1])
    weights[:embed_dims] = embed_weight
    return {"mean": mean, "scale": scale, "weights": weights}, (x - mean) / scale * weights


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a**2).sum(axis=1)[:, None] + (b**2).sum(axis=1)[None, :] - 2 * a @ b.T, 0.0)


def kernel_solve(k: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    return np.linalg.solve(k + alpha * np.eye(len(y)), y - y.mean())


def kernel_fit(x: np.ndarray, y: np.ndarray, *, alpha: float, embed_dims: int, embed_weight: float,
               width: float) -> dict:
    """Kernel ridge with a Gaussian kernel on the ridge's standardised features: what a linear model cannot
    fit (a grade that rises with length and then levels off, essays alike in several ways at once).

    The bandwidth is `width` times the median squared distance between the training rows. The model keeps the
    training rows as scaled (about 400 numbers an essay) to measure a new essay against them.
    """
    scaling, z = kernel_standardise(x, embed_dims=embed_dims, embed_weight=embed_weight)
    d2 = squared_distances(z, z)
    bandwidth = width * float(np.median(d2)) or 1.0
    dual = kernel_solve(np.exp(-d2 / bandwidth), y, alpha)
    return {"mean": scaling["mean"].tolist(), "scale": scaling["scale"].tolist(),
            "weights": scaling["weights"].tolist(), "rows": z.round(5).tolist(), "dual": dual.round(10).tolist(),
            "bandwidth": bandwidth, "alpha": alpha, "embed_weight": embed_weight, "width": width}


def kernel_deviation(kernel: dict, x: np.ndarray) -> np.ndarray:
    """The kernel part's prediction minus the mean grade."""
    z = (x - np.asarray(kernel["mean"])) / np.asarray(kernel["scale"]) * np.asarray(kernel["weights"])
    return np.exp(-squared_distances(z, np.asarray(kernel["rows"])) / kernel["bandwidth"]) @ np.asarray(kernel["dual"])


def clip_round(value: float, lo: int, hi: int) -> int:
    if math.isnan(value):
        return lo
    return int(min(max(round(value), lo), hi))


def feature_row(version: EssayVersion, items: list[dict] | None = None, *, prompt: str = "",
                lm: bool = False) -> list[float]:
    """What a calibration fits on: the embedding, the middle layer's, with `lm` the language model's middle
    layer, and the text features."""
    return scoring_row(version, text_features(version.text, items, prompt=prompt), middle=True, lm=lm)


def scoring_row(version: EssayVersion, features: list[float], *, middle: bool, lm: bool = False) -> list[float]:
    """A scorer's input row: the embedding block (the encoder's last layer, its middle layer, the language model's
    middle layer), then the features. Calibrations fitted before a block was stored read without it: no "middle"
    in the fitted model, the embedding and the features only; no "lm", no language model."""
    return [*version.embedding, *(version.middle_embedding if middle else []),
            *(version.lm_embedding if lm else []), *features]


# --- scoring --------------------------------------------------------------------------------------


@dataclass
class ScoringContext:
    """What scoring one or many essays of an assignment shares: the calibration and the prompt embedding."""

    assignment: Assignment
    calibration: Calibration | None
    prompt_embedding: list[float]
    graded_embeddings: list[list[float]]
    lm: ModelVersion | None = None  # the language model the calibration's rows were read with, if any


def calibration_lm(calibration: Calibration | None) -> ModelVersion | None:
    """The language model whose middle layer `calibration`'s rows hold (None: they hold none, it was deleted, or
    the rows read another number of tokens than essays are read with now)."""
    ridge = calibration.ridge if calibration is not None and calibration.ridge else {}
    if not ridge.get("lm") or ridge.get("lm_tokens", LM_TOKENS_UNRECORDED) != ESSAY_LM_TOKENS:
        return None
    return ModelVersion.objects.filter(pk=ridge["lm"]).first()


def scoring_context(assignment: Assignment) -> ScoringContext:
    calibration = (
        Calibration.objects.filter(assignment=assignment, state=Calibration.State.DONE)
        .select_related("model_version").order_by("-finished", "-pk").first()
    )
    # Through the essays' own graph (last and middle layer), so a worker that grades holds one session of the model.
    prompt_embedding = essay_vectors([assignment.prompt])[0][0]
    graded = [v.embedding for v in EssayVersion.objects.filter(
        essay__assignment=assignment, grade__teacher_score__isnull=False, embedding__isnull=False).only("embedding")]
    return ScoringContext(assignment, calibration, prompt_embedding, graded, calibration_lm(calibration))


def baseline_score(features: list[float], lo: int, hi: int) -> float:
    """Before calibration: longer, more varied, cleaner text scores higher (a rough prior, always reviewed)."""
    log_words, _, ttr, _, _, errors, paragraphs = features[:BASE_FEATURES]
    length = min(max((log_words - math.log1p(60)) / (math.log1p(600) - math.log1p(60)), 0), 1)
    quality = 0.55 * length + 0.15 * min(ttr / 0.6, 1) + 0.15 * min(paragraphs, 1) + 0.15 * (1 - min(errors / 2, 1))
    return lo + quality * (hi - lo)


def trait_scores(holistic: int, items: list[dict], words: int, assignment: Assignment) -> dict:
    """Each trait starts from the holistic score and loses points for its feedback density.

    Heuristic: a trait's density is the number of its feedback items (kinds mapped to the trait by name keywords,
    see feedback.KIND_KEYWORDS) per 100 words. Under 1.5 per 100 words costs nothing; 1.5 to 4.5 costs one point;
    4.5 or more costs two. A trait with no feedback at all in an essay of 150+ words gains a point. Always clipped
    to the rubric's range. Traits no feedback kind maps to (e.g. "Ideas") take the holistic score.
    """
    traits = assignment.traits or [c.get("name", "") for c in assignment.rubric if c.get("name")]
    density = fb.feedback_density(items, words)
    out = {}
    for trait in traits:
        kinds = [k for k in fb.KIND_KEYWORDS if fb.trait_for_kind(k, [trait]) == trait]
        if not kinds:
            out[trait] = holistic
            continue
        d = sum(density.get(k, 0.0) for k in kinds)
        adjust = -2 if d >= 4.5 else -1 if d >= 1.5 else (1 if d == 0 and words >= 150 else 0)
        out[trait] = clip_round(holistic + adjust, assignment.score_min, assignment.score_max)
    return out


def confidence_for(calibration: Calibration | None, nearest_graded: float | None, lo: int, hi: int) -> float:
    """How far to trust an automatic score: from the calibration's cross-validated agreement and error.

    `0.5 * max(QWK, 0) + 0.5 * (1 - RMSE / range)`, scaled by how many essays it learned from (full at
    MIN_GRADED), and by 0.8 when the essay is unlike every graded one (nearest cosine under 0.5).
    """
    from education.services.calibration import MIN_GRADED

    if calibration is None or calibration.qwk is None:
        return BASELINE_CONFIDENCE
    agreement = max(calibration.qwk, 0.0)
    precision = 1 - min((calibration.rmse or 0.0) / max(hi - lo, 1), 1.0)
    value = (0.5 * agreement + 0.5 * precision) * min(1.0, calibration.n_graded / MIN_GRADED)
    if nearest_graded is not None and nearest_graded < 0.5:
        value *= 0.8
    return round(min(max(value, 0.0), 1.0), 3)


def _near_duplicate_of(version: EssayVersion) -> EssayVersion | None:
    others = list(
        EssayVersion.objects.filter(essay__assignment_id=version.essay.assignment_id)
        .exclude(essay__student_id=version.essay.student_id).select_related("essay__student").order_by("pk")
    )
    if not others:
        return None
    leaders = near_duplicate_clusters([*(o.text for o in others), version.text], threshold=NEAR_DUPLICATE_JACCARD)
    leader = leaders[-1]
    return others[leader] if leader != len(others) else None


def grade_values(version: EssayVersion, context: ScoringContext) -> dict:
    """Every automatic field of a Grade for `version` (its embedding must be filled in)."""
    assignment = context.assignment
    lo, hi = assignment.score_min, assignment.score_max
    result = fb.essay_feedback(version.text, prompt=assignment.prompt, rubric=assignment.rubric)
    features = text_features(version.text, result.items)
    calibration, model_version = context.calibration, None
    if calibration is None:
        raw, scorer = baseline_score(features, lo, hi), "baseline"
    elif calibration.scorer == Calibration.Scorer.FINETUNED and calibration.model_version_id:
        raw, scorer = ml.score(ml.Task.ESSAY_SCORE, [version.text], scope=assignment.scope)[0], "finetuned"
        model_version = calibration.model_version
    elif calibration.ridge.get("lm") and context.lm is None:
        raw, scorer = baseline_score(features, lo, hi), "baseline"
    else:
        row = scoring_row(version, features, middle=bool(calibration.ridge.get("middle")),
                          lm=bool(calibration.ridge.get("lm")))
        raw = float(ridge_predict(calibration.ridge, np.asarray([row]))[0])
        scorer = "ridge"
    score = clip_round(raw, lo, hi)
    vector = np.asarray(version.embedding)
    prompt_similarity = float(vector @ np.asarray(context.prompt_embedding))
    nearest = max((float(vector @ np.asarray(g)) for g in context.graded_embeddings), default=None)
    confidence = confidence_for(calibration, nearest, lo, hi)
    duplicate = _near_duplicate_of(version)
    reasons = []
    if calibration is None:
        reasons.append("The scorer is not calibrated yet: grade some essays and calibrate.")
    elif scorer == "baseline":
        reasons.append("The language model the calibration read essays with was removed or now reads them "
                       "differently: calibrate again.")
    elif confidence < LOW_CONFIDENCE:
        reasons.append(f"Low confidence ({confidence:.2f}).")
    if prompt_similarity < OFF_PROMPT_COSINE:
        reasons.append(f"Possibly off-prompt (similarity to the prompt {prompt_similarity:.2f}).")
    if duplicate is not None:
        reasons.append(f"Nearly identical to another submission ({duplicate.essay.student.username}'s).")
    return {
        "score": score, "raw_score": round(raw, 4),
        "trait_scores": trait_scores(score, result.items, result.statistics["words"], assignment),
        "feedback": result.items, "statistics": result.statistics, "calibration": calibration,
        "model_version": model_version, "scorer": scorer, "confidence": confidence, "needs_review": bool(reasons),
        "review_reasons": reasons, "prompt_similarity": round(prompt_similarity, 4), "duplicate_of": duplicate,
    }


def version_grade(*, version_id: int, context: ScoringContext | None = None, rerun: bool = False) -> Grade | None:
    """Score one essay version, once: claims the version, writes its Grade. None if claimed elsewhere.

    `rerun`: the task ledger gave this call the run of a worker that was lost (education.grade_version always
    runs under it), so a version that worker left running is taken over. The ledger (core.TaskRun) counts and
    caps the attempts; `grading_attempts` records, on the version, how many times its scoring started.
    """
    claimable = Q(grading_state=EssayVersion.GradingState.PENDING)
    if rerun:  # two runs would write the same values to the one Grade a version has
        claimable |= Q(grading_state=EssayVersion.GradingState.RUNNING)
    claimed = EssayVersion.objects.filter(claimable, pk=version_id).update(
        grading_state=EssayVersion.GradingState.RUNNING, grading_attempts=F("grading_attempts") + 1)
    if not claimed:
        return Grade.objects.filter(version_id=version_id).first()
    version = EssayVersion.objects.select_related("essay__assignment", "essay__student").get(pk=version_id)
    try:
        context = context or scoring_context(version.essay.assignment)
        versions_embed([version], context.lm)
        values = grade_values(version, context)
        with transaction.atomic():
            grade, _ = Grade.objects.update_or_create(version=version, defaults=values)
            EssayVersion.objects.filter(pk=version.pk).update(
                grading_state=EssayVersion.GradingState.DONE, grading_error="")
    except Exception as exc:
        log.exception("grading essay version %s failed", version_id)
        EssayVersion.objects.filter(pk=version_id).update(
            grading_state=EssayVersion.GradingState.FAILED, grading_error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    return grade


def assignment_rescore(*, assignment: Assignment) -> int:
    """Re-score every graded version of an assignment with its current calibration (feedback and overrides kept)."""
    grades = list(Grade.objects.filter(version__essay__assignment=assignment)
                  .select_related("version__essay__student"))
    versions = [g.version for g in grades]
    context = scoring_context(assignment)
    versions_embed(versions, context.lm)
    for grade in grades:
        values = grade_values(grade.version, context)
        for name, value in values.items():
            setattr(grade, name, value)
    fields = ["score", "raw_score", "trait_scores", "feedback", "statistics", "calibration", "model_version", "scorer",
              "confidence", "needs_review", "review_reasons", "prompt_similarity", "duplicate_of", "updated"]
    with transaction.atomic():
        for grade in grades:
            grade.updated = timezone.now()
        Grade.objects.bulk_update(grades, fields, batch_size=200)
    return len(grades)


# --- submission -----------------------------------------------------------------------------------


def essay_text_clean(text: str) -> str:
    """The text as stored: normalised; refuses empty and over-long essays with a readable message."""
    if "\x00" in text:
        raise GradingError("The essay contains binary data; paste or upload plain text.")
    cleaned = normalize_text(text)
    if len(cleaned) > MAX_CHARS:  # long "words" would pass the word count
        raise GradingError(f"The essay has {len(cleaned):,} characters; the limit is {MAX_CHARS:,}.")
    words = len(cleaned.split())
    if words < MIN_WORDS:
        raise GradingError("The essay is empty: write or upload some text.")
    if words > MAX_WORDS:
        raise GradingError(f"The essay has {words:,} words; the limit is {MAX_WORDS:,}.")
    return cleaned


def upload_decode(data: bytes) -> str:
    """Decode an uploaded .txt essay: UTF-8 (with or without BOM) or UTF-16 with a BOM, nothing else."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise GradingError("The file says it is UTF-16 but cannot be read as UTF-16.") from exc
    if b"\x00" in data:
        raise GradingError("The file is not a text file (it contains binary data). Upload a .txt file.")
    if data.lstrip().startswith(b"%PDF-"):  # a PDF without binary bytes still decodes as UTF-8
        raise GradingError("The file is a PDF with a .txt name, not plain text. Paste the essay's text instead.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GradingError(
            "The file is not UTF-8 text. Save it as UTF-8 (\"Plain text, UTF-8\") and upload it again."
        ) from exc


def essay_submit(*, assignment: Assignment, student, text: str) -> EssayVersion:
    """Store a new version of the student's essay and queue its scoring (on the `default` workers)."""
    cleaned = essay_text_clean(text)
    if not assignment.course.students.filter(pk=student.pk).exists():
        raise GradingError("You are not enrolled in this course.")
    limit = settings.EDUCATION_ESSAYS_PER_MINUTE  # each version is scored by a worker
    since = timezone.now() - timedelta(seconds=60)
    if EssayVersion.objects.filter(essay__student=student, submitted__gte=since).count() >= limit:
        raise GradingError(f"You can submit {limit} essay versions a minute; wait a moment and submit again.")
    with transaction.atomic():
        essay, created = Essay.objects.select_for_update().get_or_create(
            assignment=assignment, student=student, defaults={"text": cleaned})
        last = essay.versions.order_by("-number").first()
        if last is not None and last.text == cleaned:
            raise GradingError("This is the same text as your last submission; change something to resubmit.")
        if not created:
            essay.text = cleaned
            essay.save(update_fields=["text", "updated"])
        version = EssayVersion.objects.create(essay=essay, number=(last.number + 1) if last else 1, text=cleaned)
        version_grade_enqueue(version_id=version.pk)
    return version


def version_grade_enqueue(*, version_id: int) -> None:
    """Queue scoring under the task ledger, in the caller's transaction (sent after commit).

    The scoring is one encoder pass: it is routed to the `default` queue, which the Procfile's `quick` worker
    serves alone, so a grade never waits behind the `ml` worker's decoding (CELERY_TASK_ROUTES).

    A worker lost mid-scoring is noticed by the ledger's sweep and the scoring run again; a message the broker
    lost is re-sent; when the attempts run out, version_grading_gave_up marks the version failed.
    """
    task_run_enqueue(task=GRADE_TASK, args=[version_id])


def version_grading_gave_up(*, version_id: int, attempts: int) -> bool:
    """The ledger gave up scoring a version (its workers were lost each time): fail it with a reason people see."""
    times = f"{attempts} time{'s' if attempts != 1 else ''}"
    reason = f"Scoring was given up: the worker scoring this version stopped {times}."
    return bool(EssayVersion.objects.filter(
        pk=version_id, grading_state__in=[EssayVersion.GradingState.PENDING, EssayVersion.GradingState.RUNNING],
    ).update(grading_state=EssayVersion.GradingState.FAILED, grading_error=reason))


# --- teacher grade and override -------------------------------------------------------------------


def grade_override(*, grade: Grade, teacher, score: int, reason: str) -> Grade:
    """Record the teacher's grade for an essay version (used for calibration), with an audit row."""
    reason = (reason or "").strip()
    assignment = grade.version.essay.assignment
    if not assignment.score_min <= score <= assignment.score_max:
        raise GradingError(f"The score must be between {assignment.score_min} and {assignment.score_max}.")
    if not reason:
        raise GradingError("Say why: the reason is kept with the grade and shown in its history.")
    with transaction.atomic():
        locked = Grade.objects.select_for_update().get(pk=grade.pk)
        OverrideLog.objects.create(grade=locked, teacher=teacher, auto_score=locked.score,
                                   old_score=locked.teacher_score, new_score=score, reason=reason)
        locked.teacher_score, locked.teacher_reason = score, reason
        locked.overridden_by, locked.overridden_at = teacher, timezone.now()
        locked.save(update_fields=["teacher_score", "teacher_reason", "overridden_by", "overridden_at", "updated"])
    return locked

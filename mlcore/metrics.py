"""Evaluation metrics, in plain Python so every app and benchmark computes them the same way."""

import math
from collections import Counter


def accuracy(gold: list, pred: list) -> float:
    if not gold:
        return 0.0
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)


def macro_f1(gold: list, pred: list, labels: list | None = None) -> float:
    """Unweighted mean of per-class F1 over `labels` (default: every label seen in gold or pred)."""
    labels = labels or sorted(set(gold) | set(pred))
    scores = []
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, pred, strict=True))
        fp = sum(g != label and p == label for g, p in zip(gold, pred, strict=True))
        fn = sum(g == label and p != label for g, p in zip(gold, pred, strict=True))
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def quadratic_weighted_kappa(gold: list[int], pred: list[int], min_rating: int | None = None,
                             max_rating: int | None = None) -> float:
    """Cohen's kappa with quadratic weights, the standard essay-scoring agreement measure."""
    if not gold:
        return 0.0
    lo = min(min(gold), min(pred)) if min_rating is None else min_rating
    hi = max(max(gold), max(pred)) if max_rating is None else max_rating
    n = hi - lo + 1
    if n <= 1:
        return 1.0
    observed = [[0.0] * n for _ in range(n)]
    for g, p in zip(gold, pred, strict=True):
        observed[g - lo][p - lo] += 1
    hist_g = Counter(g - lo for g in gold)
    hist_p = Counter(p - lo for p in pred)
    total = len(gold)
    num = den = 0.0
    for i in range(n):
        for j in range(n):
            weight = (i - j) ** 2 / (n - 1) ** 2
            expected = hist_g[i] * hist_p[j] / total
            num += weight * observed[i][j]
            den += weight * expected
    return 1.0 - num / den if den else 1.0


def rmse(gold: list[float], pred: list[float]) -> float:
    if not gold:
        return 0.0
    return math.sqrt(sum((g - p) ** 2 for g, p in zip(gold, pred, strict=True)) / len(gold))


def pearson(gold: list[float], pred: list[float]) -> float:
    n = len(gold)
    if n < 2:
        return 0.0
    mg, mp = sum(gold) / n, sum(pred) / n
    cov = sum((g - mg) * (p - mp) for g, p in zip(gold, pred, strict=True))
    vg = math.sqrt(sum((g - mg) ** 2 for g in gold))
    vp = math.sqrt(sum((p - mp) ** 2 for p in pred))
    return cov / (vg * vp) if vg and vp else 0.0


def classification_report(gold: list[str], pred: list[str], labels: list[str]) -> dict:
    return {"accuracy": accuracy(gold, pred), "macro_f1": macro_f1(gold, pred, labels), "n": len(gold)}


def regression_report(gold: list[float], pred: list[float]) -> dict:
    """RMSE, Pearson r, and QWK on values rounded to whole points."""
    lo, hi = (round(min(gold)), round(max(gold))) if gold else (0, 0)
    rounded = [min(max(round(p), lo), hi) for p in pred]
    return {
        "rmse": rmse(gold, pred),
        "pearson": pearson(gold, pred),
        "qwk": quadratic_weighted_kappa([round(g) for g in gold], rounded, lo, hi),
        "n": len(gold),
    }

"""Essay grading quality on ASAP-AES: the app's per-assignment scorer under the Taghipour & Ng 5-fold protocol.

Protocol:

1. Read the five `folds/fold_k/test.tsv` files line by line (pandas.read_csv mis-parses fold 1, see
   ../shared/data/README.md): 12,978 essays, `domain1_score` as the gold score. Each essay is cleaned with
   `education.services.grading.essay_text_clean`, as the app stores a submitted essay.
2. Every ASAP prompt (1..8) is an assignment with its official score range. For each fold k its
   `train_ids.txt` are the teacher-graded essays, `test_ids.txt` the essays scored; `dev_ids.txt` are only used
   to report a dev QWK (and, with `--select dev`, to choose the ridge settings). Test ids never reach a fit.
3. The scorer is the app's: `grading.essay_vectors` (packaged MiniLM's last and middle layers mean-pooled,
   essays longer than 150 words embedded in chunks and averaged), the tutor LM's middle layer mean-pooled over
   the first 1,024 tokens (`grading.ESSAY_LM_TOKENS`; `mlcore.runtime.decoder_middle`, the packaged SmolLM2 or
   `--lm-model`; `--no-lm` leaves it out, as `EDUCATION_ESSAY_LM=false` does in the app) plus
   `grading.text_features`, fitted with `calibration.ridge_select` (the ridge with its inner 4-fold choice of alpha
   and embedding weight, the kernel ridge averaged in when the same folds say it helps, and the stretch that
   widens its predictions around the mean grade), predictions clipped and rounded to the prompt's range with
   `grading.clip_round`. QWK per prompt (mean over folds), the average over prompts and the worst prompt.
4. With `--finetune`, also the calibration's encoder fine-tune for each prompt and fold, as the app runs it: the
   train ids written as a teacher's grades (JSON Lines, oldest first), read, cleaned, deduplicated and split by
   mlcore's own pipeline (80% training, 10% validation choosing the epoch), `mlcore.training.train_encoder` with
   `calibration.FINETUNE_PARAMS`, the dev and test ids scored by `mlcore.runtime.regress`. Reported beside the
   ridge: the fine-tune alone, and the scorer the calibration would choose (the fine-tune only where its
   validation QWK beats the ridge's cross-validated QWK on the same validation essays,
   `calibration.agreement_on_rows`) with its test QWK. Slow on CPU: 10-15 min a prompt and fold for the short
   essays of prompts 3-6, longer for the others.
5. Calibration curve (fold 0 by default): for n = 10, 25, 50, 100 graded essays drawn (seeded) from the
   training ids, the app's calibration path (`cross_validate` for the QWK the teacher is shown, `ridge_select`
   for the scorer), QWK on the fold's test ids, averaged over prompts and over `--curve-draws` draws.

Embeddings, LM vectors and text features are cached per essay under var/bench/essay-embeddings/,
var/bench/essay-lm/ and var/bench/essay-features/ (keyed by a hash of the text and the model path / the feature
code), so reruns and the curve do not embed again. A first full run takes over an hour on 2 CPU cores (MiniLM
16 min, the LM's half 45-60 min over 1,024 tokens); a rerun from the cache 2-3 min.

Goals being checked: average QWK >= 0.80 with no prompt below 0.70 (human raters 0.754, Taghipour & Ng 0.76,
BERT-based 0.79).

Run (the full run embeds all 12,978 essays once; see the report of the smoke run for the time per essay):

    nice -n 10 .venv/bin/python bench/essay_qwk.py [--data ../shared/data/asap_aes] [--prompts 1,3] [--folds 0]
        [--limit-per-prompt N] [--no-curve] [--curve-draws 3] [--select inner|dev] [--threads 2] [--finetune]
        [--no-lm] [--lm-model FOLDER]

Exit code 2 means the data folder is missing.
"""

import argparse
import hashlib
import inspect
import json
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

import _common  # bench/ is sys.path[0] when this file runs as a script

DEFAULT_DATA = _common.REPO.parent / "shared" / "data" / "asap_aes"
EMBED_CACHE = _common.RESULTS_DIR / "essay-embeddings"
FEATURE_CACHE = _common.RESULTS_DIR / "essay-features"
LM_CACHE = _common.RESULTS_DIR / "essay-lm"
FINETUNE_DIR = _common.RESULTS_DIR / "essay-finetune"  # a fine-tune's work folder, removed after
FOLDS = 5
PROMPTS = list(range(1, 9))
# Official domain1_score ranges (essay_set_descriptions.xlsx); the ranges Taghipour & Ng score QWK on.
SCORE_RANGES = {1: (2, 12), 2: (1, 6), 3: (0, 3), 4: (0, 3), 5: (0, 4), 6: (0, 4), 7: (0, 30), 8: (0, 60)}
CURVE_SIZES = [10, 25, 50, 100]
EMBED_BATCH = 64  # essays per essay_vectors call (each call is chunked and batched again by mlcore)
GOAL_AVERAGE, GOAL_WORST = 0.80, 0.70


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="ASAP folder holding folds/fold_k/{test.tsv,train_ids.txt,dev_ids.txt,test_ids.txt}")
    parser.add_argument("--prompts", default=",".join(map(str, PROMPTS)), help="comma-separated prompts (default all)")
    parser.add_argument("--folds", default=",".join(map(str, range(FOLDS))),
                        help="comma-separated folds to evaluate (default 0,1,2,3,4)")
    parser.add_argument("--limit-per-prompt", type=int, default=0,
                        help="keep only N essays per prompt (a seeded sample; for smoke runs; 0 = all)")
    parser.add_argument("--no-curve", action="store_true", help="skip the calibration curve")
    parser.add_argument("--curve-fold", type=int, default=0, help="fold of the calibration curve (default 0)")
    parser.add_argument("--curve-sizes", default=",".join(map(str, CURVE_SIZES)),
                        help="graded-essay counts of the curve (default 10,25,50,100)")
    parser.add_argument("--curve-draws", type=int, default=3,
                        help="seeded draws per curve point, averaged (default 3)")
    parser.add_argument("--select", choices=["inner", "dev"], default="inner",
                        help="inner: the app's ridge_select (inner 4-fold CV on the train ids; default); "
                             "dev: the ridge grid point with the best QWK on the dev ids, fitted on the train ids")
    parser.add_argument("--finetune", action="store_true",
                        help="also run the calibration's encoder fine-tune per prompt and fold (slow) and report "
                             "the scorer the calibration would choose")
    parser.add_argument("--no-lm", action="store_true",
                        help="leave the language model's middle layer (mlcore.runtime.decoder_middle) out of the rows")
    parser.add_argument("--lm-model", default="",
                        help="the language model that reads the essays: a local HF folder (default the packaged "
                             "SmolLM2)")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the --limit sample and the curve draws")
    parser.add_argument("--threads", type=int, default=_common.DEFAULT_THREADS, help="torch threads (default 2)")
    return parser.parse_args(argv)


# --- data -------------------------------------------------------------------------------------------


def _field(value: str) -> str:
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        value = value[1:-1].replace('""', '"')
    return value


def read_fold_tsv(path: Path) -> list[dict]:
    """Rows of a fold's test.tsv, read line by line as the data README says (not with pandas)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    header = [h.strip() for h in lines[0].rstrip("\r").split("\t")]
    rows = []
    for line in lines[1:]:
        line = line.rstrip("\r")
        if not line.strip():
            continue
        cells = [_field(c) for c in line.split("\t")]
        row = dict(zip(header, cells, strict=False))
        rows.append({"id": int(row["essay_id"]), "prompt": int(row["essay_set"]), "text": row["essay"],
                     "score": int(row["domain1_score"])})
    return rows


def read_ids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()]


def load_data(folder: Path) -> tuple[dict[int, dict], list[dict]]:
    """(essay id -> essay, per fold {"train", "dev", "test"} id lists)."""
    essays: dict[int, dict] = {}
    folds = []
    for k in range(FOLDS):
        base = folder / "folds" / f"fold_{k}"
        for row in read_fold_tsv(base / "test.tsv"):
            if row["id"] in essays:
                raise ValueError(f"essay {row['id']} appears in two folds")
            essays[row["id"]] = row
        folds.append({part: read_ids(base / f"{part}_ids.txt") for part in ("train", "dev", "test")})
    for k, fold in enumerate(folds):
        missing = [i for part in fold.values() for i in part if i not in essays]
        if missing:
            raise ValueError(f"fold {k}: {len(missing)} ids have no essay (e.g. {missing[:3]})")
        if set(fold["test"]) & (set(fold["train"]) | set(fold["dev"])):
            raise ValueError(f"fold {k}: a test id is also a train/dev id")
    return essays, folds


FOLD_FILES = [f"folds/fold_{k}/{name}" for k in range(FOLDS)
              for name in ("test.tsv", "train_ids.txt", "dev_ids.txt", "test_ids.txt")]


# --- the app's scorer, with a per-essay disk cache ---------------------------------------------------


def embedding_model_path() -> str:
    """The model `mlcore.api.embed` uses (the active embed version, else the packaged encoder)."""
    from mlcore import specs
    from mlcore.api import NoActiveVersion, Task, active_version, version_path

    try:
        return str(version_path(active_version(task=Task.EMBED)))
    except NoActiveVersion:
        return str(specs.resolve(specs.encoder_spec()))


def _key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _cache_path(root: Path, key: str) -> Path:
    return root / key[:2] / f"{key}.npy"


def _save(path: Path, array) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, array)
    tmp.replace(path)


class Vectors:
    """Embedding + text features per essay id, computed by the app's code once and cached on disk."""

    def __init__(self, essays: dict[int, dict], model_path: str, lm_path: str = ""):
        from education.services import feedback, grading

        self.essays, self.model_path, self.lm_path = essays, model_path, lm_path
        self.lm: dict[int, object] = {}
        self.chunk_words = str(grading.EMBED_CHUNK_WORDS)
        # The feature cache is invalidated when the feature code changes.
        self.feature_code = _key(inspect.getsource(grading.text_features), inspect.getsource(feedback))
        self.embeddings: dict[int, object] = {}
        self.features: dict[int, object] = {}
        self.timing = {"embedded": 0, "embedded_chunks": 0, "embed_s": 0.0, "embeddings_from_cache": 0,
                       "featurised": 0, "features_s": 0.0, "features_from_cache": 0,
                       "lm_read": 0, "lm_s": 0.0, "lm_from_cache": 0}

    def _embed_key(self, i: int) -> str:
        return _key(self.essays[i]["text"], self.model_path, self.chunk_words, "last+middle")

    def _lm_key(self, i: int) -> str:
        from education.services.grading import ESSAY_LM_TOKENS

        return _key(self.essays[i]["text"], self.lm_path, f"decoder-middle-{ESSAY_LM_TOKENS}")

    def _feature_key(self, i: int) -> str:
        return _key(self.essays[i]["text"], self.feature_code)

    def ensure(self, ids: list[int], say=print) -> None:
        import numpy as np

        from education.services import grading

        def embed(batch: list[int]) -> list[list[float]]:
            texts = [self.essays[i]["text"] for i in batch]
            self.timing["embedded_chunks"] += sum(
                max(1, -(-len(t.split()) // grading.EMBED_CHUNK_WORDS)) for t in texts)
            return [[*last, *middle] for last, middle in grading.essay_vectors(texts)]

        self._fill(self.embeddings, EMBED_CACHE, self._embed_key, ids, embed, say=say, what="embedding",
                   counters=("embedded", "embed_s", "embeddings_from_cache"))
        if self.lm_path:
            from mlcore import runtime

            self._fill(self.lm, LM_CACHE, self._lm_key, ids,
                       lambda batch: runtime.decoder_middle(self.lm_path, [self.essays[i]["text"] for i in batch],
                                                            max_length=grading.ESSAY_LM_TOKENS),
                       say=say, what="reading with the language model", counters=("lm_read", "lm_s", "lm_from_cache"))
        for i in ids:
            if i in self.features:
                continue
            path = _cache_path(FEATURE_CACHE, self._feature_key(i))
            if path.is_file():
                self.features[i] = np.load(path)
                self.timing["features_from_cache"] += 1
                continue
            t0 = time.perf_counter()
            # As calibration does (feature_row without feedback items): essay_feedback without the prompt.
            row = np.asarray(grading.text_features(self.essays[i]["text"]), dtype=float)
            self.timing["features_s"] += time.perf_counter() - t0
            self.timing["featurised"] += 1
            _save(path, row)
            self.features[i] = row

    def _fill(self, store: dict, root: Path, key, ids: list[int], compute, *, say, what: str,
              counters: tuple[str, str, str]) -> None:
        """Each id's vector into `store`: from the cache under `root`, else `compute(batch of ids)` in batches of
        EMBED_BATCH, cached; progress every 30 s. `counters`: the timing keys of computed, seconds, cached."""
        import numpy as np

        computed, seconds, cached = counters
        todo = []
        for i in ids:
            if i in store:
                continue
            path = _cache_path(root, key(i))
            if path.is_file():
                store[i] = np.load(path).astype(float)
                self.timing[cached] += 1
            else:
                todo.append(i)
        if not todo:
            return
        say(f"  {what}: {len(todo)} essays ({len(ids) - len(todo)} cached) ...")
        started, last = time.perf_counter(), time.perf_counter()
        for start in range(0, len(todo), EMBED_BATCH):
            batch = todo[start : start + EMBED_BATCH]
            t0 = time.perf_counter()
            vectors = compute(batch)
            self.timing[seconds] += time.perf_counter() - t0
            self.timing[computed] += len(batch)
            for i, vector in zip(batch, vectors, strict=True):
                array = np.asarray(vector, dtype=np.float32)
                _save(_cache_path(root, key(i)), array)
                store[i] = array.astype(float)
            if time.perf_counter() - last > 30 or start + EMBED_BATCH >= len(todo):
                done = min(start + EMBED_BATCH, len(todo))
                rate = done / max(time.perf_counter() - started, 1e-9)
                say(f"    {done}/{len(todo)} essays, {rate:.2f} essays/s", flush=True)
                last = time.perf_counter()

    def matrix(self, ids: list[int]):
        import numpy as np

        return np.asarray([[*self.embeddings[i], *self.lm.get(i, ()), *self.features[i]] for i in ids])

    @property
    def embed_dims(self) -> int:
        """The embedding block's columns: the encoder's layers and, with --lm, the language model's."""
        lm = len(next(iter(self.lm.values()))) if self.lm else 0
        return len(next(iter(self.embeddings.values()))) + lm


# --- evaluation ------------------------------------------------------------------------------------


def qwk(gold: list[int], pred: list[int], prompt: int) -> float:
    from mlcore import metrics

    lo, hi = SCORE_RANGES[prompt]
    return metrics.quadratic_weighted_kappa(gold, pred, lo, hi)


def predict(model: dict, x, prompt: int) -> list[int]:
    from education.services.grading import clip_round, ridge_predict

    lo, hi = SCORE_RANGES[prompt]
    return [clip_round(float(v), lo, hi) for v in ridge_predict(model, x)]


def fit(vectors: Vectors, train: list[int], dev: list[int], prompt: int, select: str) -> tuple[dict, dict]:
    """The scorer for one prompt and fold: the app's ridge_select (or the dev-chosen grid point)."""
    import numpy as np

    from education.services.calibration import RIDGE_GRID, ridge_select
    from education.services.grading import ridge_fit

    essays = vectors.essays
    x, y = vectors.matrix(train), np.asarray([float(essays[i]["score"]) for i in train])
    dims = vectors.embed_dims
    lo, hi = SCORE_RANGES[prompt]
    if select == "inner" or not dev:
        model = ridge_select(x, y, embed_dims=dims, lo=lo, hi=hi)
    else:
        x_dev, gold_dev = vectors.matrix(dev), [essays[i]["score"] for i in dev]
        best = None
        for alpha, weight in RIDGE_GRID:
            candidate = ridge_fit(x, y, alpha=alpha, embed_dims=dims, embed_weight=weight)
            score = qwk(gold_dev, predict(candidate, x_dev, prompt), prompt)
            if best is None or score > best[0] + 1e-9:
                best = (score, candidate)
        model = best[1]
    dev_qwk = qwk([essays[i]["score"] for i in dev], predict(model, vectors.matrix(dev), prompt), prompt) if dev \
        else None
    kernel = model.get("kernel")
    return model, {"alpha": model["alpha"], "embed_weight": model["embed_weight"], "stretch": model.get("stretch"),
                   "kernel": {k: kernel[k] for k in ("embed_weight", "width", "alpha")} if kernel else None,
                   "dev_qwk": dev_qwk}


def evaluate_prompt(vectors: Vectors, folds: list[dict], fold_ids: list[int], prompt: int, select: str,
                    finetune: bool = False) -> dict:
    essays = vectors.essays
    per_fold = []
    for k in fold_ids:
        part = {name: [i for i in folds[k][name] if essays[i]["prompt"] == prompt] for name in ("train", "dev", "test")}
        started = time.perf_counter()
        model, info = fit(vectors, part["train"], part["dev"], prompt, select)
        pred = predict(model, vectors.matrix(part["test"]), prompt)
        gold = [essays[i]["score"] for i in part["test"]]
        per_fold.append({"fold": k, "train": len(part["train"]), "dev": len(part["dev"]), "test": len(part["test"]),
                         "qwk": qwk(gold, pred, prompt), **info,
                         "exact": sum(g == p for g, p in zip(gold, pred, strict=True)) / max(len(gold), 1),
                         "fit_s": round(time.perf_counter() - started, 2)})
        if finetune:
            per_fold[-1]["finetune"] = finetune_prompt(vectors, folds[k], k, prompt, model)
    return {"prompt": prompt, "range": SCORE_RANGES[prompt], "folds": per_fold,
            "qwk": statistics.mean(f["qwk"] for f in per_fold)}


def finetune_prompt(vectors: Vectors, fold: dict, k: int, prompt: int, ridge_model: dict) -> dict:
    """The calibration's encoder fine-tune on one prompt's train ids, and the scorer the calibration would choose."""
    import numpy as np

    from education.services.calibration import (
        FINETUNE_PARAMS,
        MAX_FOLDS,
        agreement_on_rows,
        cross_validate,
        finetune_preferred,
    )
    from education.services.grading import clip_round
    from mlcore import data as pipeline
    from mlcore import onnx_serving, runtime, specs
    from mlcore.training import train_encoder

    essays = vectors.essays
    part = {name: sorted(i for i in fold[name] if essays[i]["prompt"] == prompt) for name in ("train", "dev", "test")}
    lo, hi = SCORE_RANGES[prompt]
    # As calibration._finetune_start hands the grades to mlcore: one JSON line an essay, read by mlcore's pipeline.
    upload = "".join(json.dumps({"text": essays[i]["text"], "target": essays[i]["score"]}) + "\n"
                     for i in part["train"]).encode()
    read = pipeline.read_upload(upload, filename="grades.jsonl", target="target")
    splits = pipeline.assign_splits(pipeline.clean_and_dedup(read.rows, min_chars=1).rows)
    rows = {name: [{"text": r.text, "target": r.target, "line": r.line} for r in splits[name]]
            for name in ("train", "validation")}
    work = FINETUNE_DIR / f"fold{k}-prompt{prompt}"
    shutil.rmtree(work, ignore_errors=True)
    started = time.perf_counter()
    result = train_encoder(base_path=str(specs.resolve(specs.encoder_spec())), kind="regressor", train=rows["train"],
                           validation=rows["validation"], labels=None, params=FINETUNE_PARAMS, work_dir=work)
    train_s = time.perf_counter() - started
    scored = {name: runtime.regress(str(result.best_dir), [essays[i]["text"] for i in part[name]])
              for name in ("dev", "test")}
    runtime.cache.clear()
    shutil.rmtree(onnx_serving.export_dir(result.best_dir), ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)

    x, y = vectors.matrix(part["train"]), np.asarray([float(essays[i]["score"]) for i in part["train"]])
    cv = cross_validate(x, y, lo=lo, hi=hi, folds=MAX_FOLDS, embed_dims=vectors.embed_dims)
    ridge_on_validation = agreement_on_rows(cv["predictions"], rows["validation"], lo=lo, hi=hi)
    finetuned_validation = result.metrics.get("qwk")
    # As calibration_finish decides (ridge's overall figure only where too few validation essays match).
    ridge_compared = ridge_on_validation if ridge_on_validation is not None else cv["qwk"]
    chosen = ("finetuned" if finetune_preferred(finetuned_validation, result.metrics.get("n", 0), ridge_compared)
              else "ridge")
    out = {"train": len(rows["train"]), "validation": len(rows["validation"]), "train_s": round(train_s, 1),
           "epochs": [{"epoch": h["epoch"], "val_qwk": h.get("val_qwk")} for h in result.history],
           "finetuned_validation_qwk": finetuned_validation, "ridge_validation_qwk": ridge_on_validation,
           "ridge_cv_qwk": cv["qwk"], "chosen": chosen}
    for name in ("dev", "test"):
        gold = [essays[i]["score"] for i in part[name]]
        finetuned = qwk(gold, [clip_round(float(v), lo, hi) for v in scored[name]], prompt)
        ridge = qwk(gold, predict(ridge_model, vectors.matrix(part[name]), prompt), prompt)
        out[f"{name}_qwk"] = {"finetuned": finetuned, "ridge": ridge,
                              "chosen": finetuned if chosen == "finetuned" else ridge}
    return out


def curve_point(vectors: Vectors, fold: dict, prompt: int, n: int, draw: int, seed: int) -> dict | None:
    """The app's calibration on n essays drawn from the training ids; QWK on the fold's test ids."""
    import numpy as np

    from education.services.calibration import MAX_FOLDS, cross_validate, ridge_select

    essays = vectors.essays
    train = sorted(i for i in fold["train"] if essays[i]["prompt"] == prompt)
    test = [i for i in fold["test"] if essays[i]["prompt"] == prompt]
    if len(train) < n or not test:
        return None
    graded = random.Random(f"{seed}:{prompt}:{n}:{draw}").sample(train, n)
    x, y = vectors.matrix(graded), np.asarray([float(essays[i]["score"]) for i in graded])
    lo, hi = SCORE_RANGES[prompt]
    cv = cross_validate(x, y, lo=lo, hi=hi, folds=MAX_FOLDS, embed_dims=vectors.embed_dims)
    model = ridge_select(x, y, embed_dims=vectors.embed_dims, lo=lo, hi=hi)
    pred = predict(model, vectors.matrix(test), prompt)
    return {"prompt": prompt, "n": n, "draw": draw, "test": len(test), "cv_qwk_shown": cv["qwk"],
            "test_qwk": qwk([essays[i]["score"] for i in test], pred, prompt)}


def fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def main(argv=None) -> int:
    args = parse_args(argv)
    if _common.missing_data("essay_qwk", args.data, FOLD_FILES):
        return 2
    prompts = [int(p) for p in args.prompts.split(",") if p.strip()]
    fold_ids = [int(f) for f in args.folds.split(",") if f.strip()]
    sizes = [int(n) for n in args.curve_sizes.split(",") if n.strip()]
    bad = [p for p in prompts if p not in SCORE_RANGES] + [f for f in fold_ids if not 0 <= f < FOLDS]
    if bad or not prompts or not fold_ids or not 0 <= args.curve_fold < FOLDS:
        print("essay_qwk: --prompts takes 1..8 and --folds / --curve-fold take 0..4.", file=sys.stderr)
        return 2

    started = time.monotonic()
    _common.setup_django()
    _common.set_threads(args.threads)
    info = _common.machine(args.threads)
    print(_common.describe(info))
    durations = {}

    from education.services.grading import essay_text_clean


    print(f"Reading {args.data} ...")
    t0 = time.monotonic()
    essays, folds = load_data(args.data)
    for essay in essays.values():
        essay["text"] = essay_text_clean(essay["text"])
    from education.services.grading import EMBED_CHUNK_WORDS

    data_info = {"essays": len(essays),
                 "per_prompt": {p: sum(e["prompt"] == p for e in essays.values()) for p in PROMPTS},
                 "chunks": sum(max(1, -(-len(e["text"].split()) // EMBED_CHUNK_WORDS)) for e in essays.values())}
    if args.limit_per_prompt:
        keep = set()
        for p in prompts:
            ids = sorted(i for i, e in essays.items() if e["prompt"] == p)
            keep.update(random.Random(f"{args.seed}:{p}").sample(ids, min(args.limit_per_prompt, len(ids))))
        essays = {i: e for i, e in essays.items() if i in keep}
        folds = [{part: [i for i in ids if i in keep] for part, ids in fold.items()} for fold in folds]
        data_info["limited_to"] = len(essays)
    durations["read_s"] = round(time.monotonic() - t0, 1)
    print(f"  {data_info['essays']} essays in 5 folds; using {len(essays)} of prompts {prompts}")

    model_path = embedding_model_path()
    print(f"Embedding model: {model_path}")
    lm_path = ""
    if not args.no_lm:
        from mlcore import specs

        lm_path = args.lm_model or specs.resolve(specs.lm_spec())
        print(f"Language model: {lm_path}")
    vectors = Vectors(essays, model_path, lm_path)
    needed = sorted(i for i, e in essays.items() if e["prompt"] in prompts)
    t0 = time.monotonic()
    vectors.ensure(needed)
    durations["vectors_s"] = round(time.monotonic() - t0, 1)
    timing = vectors.timing
    if timing["embedded"]:
        timing["essays_per_s"] = round(timing["embedded"] / timing["embed_s"], 2)
        timing["chunks_per_s"] = round(timing["embedded_chunks"] / timing["embed_s"], 2)
        timing["full_corpus_embed_estimate_min"] = round(data_info["chunks"] / timing["chunks_per_s"] / 60, 1)
    if timing["featurised"]:
        timing["features_per_s"] = round(timing["featurised"] / timing["features_s"], 1)
    print("  " + ", ".join(f"{k} {round(v, 1) if isinstance(v, float) else v}" for k, v in timing.items()))

    print(f"Fitting per-prompt scorers on folds {fold_ids} (selection: {args.select}) ...")
    t0 = time.monotonic()
    results = []
    for p in prompts:
        result = evaluate_prompt(vectors, folds, fold_ids, p, args.select, args.finetune)
        results.append(result)
        print(f"  prompt {p}: QWK {result['qwk']:.3f} "
              "(" + ", ".join(f"fold {f['fold']} {f['qwk']:.3f}" for f in result["folds"]) + ")", flush=True)
        for f in result["folds"] if args.finetune else []:
            ft, dev, test = f["finetune"], f["finetune"]["dev_qwk"], f["finetune"]["test_qwk"]
            print(f"    fold {f['fold']} fine-tune ({ft['train']} + {ft['validation']} essays, {ft['train_s']:.0f} s): "
                  f"validation QWK {fmt(ft['finetuned_validation_qwk'])}, ridge's there "
                  f"{fmt(ft['ridge_validation_qwk'])} -> {ft['chosen']}; fine-tune / ridge: dev "
                  f"{dev['finetuned']:.3f} / {dev['ridge']:.3f}, test {test['finetuned']:.3f} / {test['ridge']:.3f}",
                  flush=True)
    durations["fit_s"] = round(time.monotonic() - t0, 1)
    average = statistics.mean(r["qwk"] for r in results)
    worst = min(results, key=lambda r: r["qwk"])

    curve = None
    if not args.no_curve:
        print(f"Calibration curve on fold {args.curve_fold}, n = {sizes}, {args.curve_draws} draws ...")
        t0 = time.monotonic()
        points = []
        for n in sizes:
            for p in prompts:
                for draw in range(args.curve_draws):
                    point = curve_point(vectors, folds[args.curve_fold], p, n, draw, args.seed)
                    if point:
                        points.append(point)
        curve = []
        for n in sizes:
            at_n = [pt for pt in points if pt["n"] == n]
            per_prompt = {p: statistics.mean(pt["test_qwk"] for pt in at_n if pt["prompt"] == p)
                          for p in prompts if any(pt["prompt"] == p for pt in at_n)}
            shown = {p: statistics.mean(pt["cv_qwk_shown"] for pt in at_n if pt["prompt"] == p) for p in per_prompt}
            curve.append({"n": n, "prompts": sorted(per_prompt), "per_prompt_test_qwk": per_prompt,
                          "per_prompt_cv_qwk_shown": shown,
                          "test_qwk": statistics.mean(per_prompt.values()) if per_prompt else None,
                          "cv_qwk_shown": statistics.mean(shown.values()) if shown else None})
        durations["curve_s"] = round(time.monotonic() - t0, 1)

    print()
    print(f"ASAP-AES, Taghipour & Ng folds {fold_ids}, app scorer (MiniLM chunked embedding + text features, "
          f"ridge, selection {args.select})" + (f", with the LM's middle layer ({lm_path})" if lm_path else "")
          + (f", at most {args.limit_per_prompt} essays per prompt" if args.limit_per_prompt else ""))
    rows = [[r["prompt"], f"{r['range'][0]}–{r['range'][1]}",
             sum(f["train"] for f in r["folds"]) // len(r["folds"]), sum(f["test"] for f in r["folds"]),
             fmt(statistics.mean(f["dev_qwk"] for f in r["folds"]) if all(f["dev_qwk"] is not None
                                                                           for f in r["folds"]) else None),
             fmt(r["qwk"]), " ".join(f"{f['qwk']:.3f}" for f in r["folds"])] for r in results]
    rows.append(["**average**", "", "", "", "", f"**{average:.3f}**", ""])
    print(_common.table(["prompt", "range", "train/fold", "test essays", "dev QWK", "test QWK", "per fold"], rows))
    if args.finetune:
        print("\nThe calibration's encoder fine-tune beside the ridge (mean over folds; 'chosen' is the scorer the "
              "calibration picks on the fine-tune's validation essays)")
        ft_rows = []
        for r in results:
            fts = [f["finetune"] for f in r["folds"]]
            ft_rows.append([r["prompt"], *(f"{statistics.mean(ft[f'{part}_qwk'][who] for ft in fts):.3f}"
                                           for part in ("dev", "test") for who in ("ridge", "finetuned")),
                            f"{statistics.mean(ft['test_qwk']['chosen'] for ft in fts):.3f}",
                            " ".join(ft["chosen"] for ft in fts)])
        print(_common.table(["prompt", "dev ridge", "dev fine-tune", "test ridge", "test fine-tune", "test chosen",
                             "chosen per fold"], ft_rows))
    goal_met = average >= GOAL_AVERAGE and worst["qwk"] >= GOAL_WORST
    print(f"\nAverage {average:.3f}, worst prompt {worst['prompt']} at {worst['qwk']:.3f}. Goal: average >= "
          f"{GOAL_AVERAGE} with no prompt below {GOAL_WORST}: {'met' if goal_met else 'not met'}.")
    if curve:
        print(f"\nCalibration curve (fold {args.curve_fold}; QWK on its test ids, mean over prompts and "
              f"{args.curve_draws} draws; 'shown' is the cross-validated QWK the calibration page reports)")
        print(_common.table(["graded essays", "prompts", "test QWK", "shown (CV) QWK"],
                            [[c["n"], len(c["prompts"]), fmt(c["test_qwk"]), fmt(c["cv_qwk_shown"])]
                             for c in curve]))
    elapsed = time.monotonic() - started
    durations["total_s"] = round(elapsed, 1)
    print(f"\nTotal {elapsed / 60:.1f} min ({', '.join(f'{k} {v}' for k, v in durations.items())}).")
    if timing.get("essays_per_s"):
        print(f"Embedding speed here: {timing['essays_per_s']} essays/s ({timing['chunks_per_s']} chunks/s); "
              f"all 12,978 essays ({data_info['chunks']:,} chunks of at most {EMBED_CHUNK_WORDS} words) would take "
              f"about {timing['full_corpus_embed_estimate_min']} min to embed at that chunk rate.")
    path = _common.write_result("essay_qwk", {
        "command": " ".join(sys.argv), "args": {k: str(v) for k, v in vars(args).items()}, "data": data_info,
        "machine": info, "embedding_model": model_path, "language_model": lm_path or None, "vectors": timing,
        "durations": durations,
        "results": results, "average_qwk": average, "worst_prompt": {"prompt": worst["prompt"], "qwk": worst["qwk"]},
        "goal": {"average": GOAL_AVERAGE, "worst": GOAL_WORST, "met": goal_met}, "curve": curve,
    })
    print(f"Saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

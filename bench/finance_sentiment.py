"""Financial sentiment quality: MiniLM fine-tuned on Financial PhraseBank vs the app's out-of-box seed model.

Protocol (the one FinBERT reports on, made reproducible):

1. Read the four PhraseBank files (`Sentences_50Agree/66Agree/75Agree/AllAgree.txt`, latin-1 `sentence@label`)
   with `mlcore.data.read_phrasebank`. Every sentence gets the highest agreement level whose file holds it.
2. Deduplicate the 50Agree set (which holds all the others) with `mlcore.data.clean_and_dedup`: exact and
   MinHash near-duplicates go before anything is split, so no sentence has a copy on the other side.
3. A seeded stratified 80/20 split, stratified by (agreement level, label): the test set of the AllAgree
   sentences is then exactly the AllAgree part of the 50Agree test set, with the same 20% share.
   10% of the 80 (stratified the same way) is the validation split: the only thing used to choose the
   epoch (and, with several `--configs`, the configuration). The test split is looked at once, at the end.
4. Fine-tune all-MiniLM-L6-v2 as a 3-class classifier with `mlcore.training.train_encoder` (the code the app's
   fine-tuning jobs run) for each seed in `--seeds`; with several seeds their probabilities are also averaged
   (a seed ensemble) and reported as an extra row. `--soft-labels` trains on soft labels from the agreement
   levels (a row's `confidence`, SOFT_CONFIDENCE); validation and test are scored on the labels as given.
   `--layer-decay d` gives each layer below the top d times the rate of the one above; `--class-weighting
   balanced` weighs each label's loss by rows / (3 x its rows) (neutral is about 59% of the sentences).
   `--base` fine-tunes another backbone the same way (e.g. `package:smollm2`, the SmolLM2 decoder with a
   classification head on its last token).
5. Report accuracy and macro-F1 on the 50Agree test split and on its AllAgree part, for every model and for
   the app's active `finance.sentiment` version (the seed model `make run` trains from the demo seed set,
   which never saw PhraseBank), on the same split.

Goals being checked: >= 0.88 accuracy / 0.86 macro-F1 on 50Agree, >= 0.97 accuracy on AllAgree
(FinBERT: 0.86 / 0.84 and 0.97 / 0.95).

Run (about 15 minutes per seed on 2 quiet cores; results in var/bench/finance_sentiment-*.json):

    .venv/bin/python bench/finance_sentiment.py [--data ../shared/data/financial_phrasebank] [--seeds 13]
        [--epochs 5] [--learning-rate 5e-5] [--batch-size 16] [--max-length 64] [--split-seed 2026] [--soft-labels]
        [--layer-decay 1.0] [--class-weighting none|balanced] [--base package:minilm]

Exit code 2 means the data folder is missing.
"""

import argparse
import random
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

import _common  # bench/ is sys.path[0] when this file runs as a script

LABELS = ["positive", "neutral", "negative"]
LEVELS = ["50", "66", "75", "All"]  # lowest to highest agreement
# --soft-labels: the share of annotators behind a sentence's label, the middle of its level's range (50-65%,
# 66-74%, 75-99%, 100%); the rest of the training target is shared by the other two labels.
SOFT_CONFIDENCE = {"50": 0.58, "66": 0.70, "75": 0.87, "All": 1.0}
DEFAULT_DATA = _common.REPO.parent / "shared" / "data" / "financial_phrasebank"
WORK_DIR = _common.RESULTS_DIR / "finance-sentiment"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder with the PhraseBank Sentences_*Agree.txt files (default ../shared/data/...)")
    parser.add_argument("--seeds", default="13", help="comma-separated training seeds (default 13)")
    parser.add_argument("--epochs", type=int, default=5, help="maximum epochs (default 5; stops early on validation)")
    parser.add_argument("--learning-rate", type=float, default=5e-5, help="peak learning rate (default 5e-5)")
    parser.add_argument("--layer-decay", type=float, default=1.0,
                        help="layer-wise learning-rate decay: each layer below the top learns at this factor of the "
                             "one above (default 1: one rate for all)")
    parser.add_argument("--class-weighting", choices=["none", "balanced"], default="none",
                        help="weigh each label's training loss by rows / (labels x its rows) (default none)")
    parser.add_argument("--batch-size", type=int, default=16, help="training batch size (default 16)")
    parser.add_argument("--max-length", type=int, default=64, help="training max tokens (default 64)")
    parser.add_argument("--patience", type=int, default=2, help="epochs without validation gain before stopping")
    parser.add_argument("--split-seed", type=int, default=2026, help="seed of the stratified split (default 2026)")
    parser.add_argument("--test-share", type=float, default=0.2, help="test share (default 0.2)")
    parser.add_argument("--validation-share", type=float, default=0.1,
                        help="share of the training part held out for validation (default 0.1)")
    parser.add_argument("--soft-labels", action="store_true",
                        help="train on soft labels from the agreement levels (SOFT_CONFIDENCE; validation and test "
                             "are scored on the labels as given)")
    parser.add_argument("--base", default="package:minilm",
                        help="model spec of the backbone to fine-tune (default package:minilm; package:smollm2 "
                             "fine-tunes the SmolLM2 decoder as a classifier, any local HF folder works)")
    parser.add_argument("--threads", type=int, default=_common.DEFAULT_THREADS, help="torch threads (default 2)")
    return parser.parse_args(argv)


def agreement_levels(folder: Path) -> dict[str, str]:
    """Normalised sentence -> the highest agreement level whose file holds it."""
    from mlcore import data

    level_of: dict[str, str] = {}
    for level in LEVELS:
        path = folder / f"Sentences_{level}Agree.txt"
        for row in data.read_phrasebank(path.read_bytes(), filename=path.name).rows:
            level_of[data.normalize_text(row.text).lower()] = level
    return level_of


def stratified_split(rows: list, *, key, share: float, seed: int) -> tuple[list, list]:
    """(rest, held) with `share` of every stratum in `held`, chosen by a seeded shuffle."""
    strata = defaultdict(list)
    for row in rows:
        strata[key(row)].append(row)
    rng = random.Random(seed)
    rest, held = [], []
    for name in sorted(strata):
        members = sorted(strata[name], key=lambda r: r["hash"])
        rng.shuffle(members)
        cut = round(len(members) * share)
        held.extend(members[:cut])
        rest.extend(members[cut:])
    return rest, held


def load_splits(args) -> tuple[dict, dict]:
    from mlcore import data

    level_of = agreement_levels(args.data)
    path = args.data / "Sentences_50Agree.txt"
    raw = data.read_phrasebank(path.read_bytes(), filename=path.name)
    clean = data.clean_and_dedup(raw.rows)
    rows = [{"text": r.text, "label": r.label, "hash": r.hash, "level": level_of.get(r.text.lower(), "50")}
            for r in clean.rows]
    stratum = lambda r: (r["level"], r["label"])  # noqa: E731
    train_all, test = stratified_split(rows, key=stratum, share=args.test_share, seed=args.split_seed)
    train, validation = stratified_split(train_all, key=stratum, share=args.validation_share, seed=args.split_seed + 1)
    splits = {"train": train, "validation": validation, "test": test}
    info = {
        "read": len(raw.rows), "rejected_on_read": len(raw.rejected), "exact_duplicates": clean.exact_duplicates,
        "near_duplicates": clean.near_duplicates, "kept": len(rows),
        **{f"{name}_rows": len(part) for name, part in splits.items()},
        "test_allagree_rows": sum(r["level"] == "All" for r in test),
        "levels": {level: sum(r["level"] == level for r in rows) for level in LEVELS},
    }
    assert not ({r["hash"] for r in test} & {r["hash"] for r in train_all}), "a sentence crossed the split"
    return splits, info


def fine_tune(splits, args, seed: int) -> dict:
    from mlcore import specs, training

    work_dir = WORK_DIR / (f"seed-{seed}" if args.base == "package:minilm" else f"{slug(args.base)}-seed-{seed}")
    if work_dir.exists():  # train_encoder resumes from a checkpoint it finds; a benchmark starts fresh
        shutil.rmtree(work_dir)

    def rows(name):
        soft = args.soft_labels and name == "train"
        return [{"text": r["text"], "label": r["label"],
                 **({"confidence": SOFT_CONFIDENCE[r["level"]]} if soft else {})} for r in splits[name]]

    def on_epoch(event):
        print(f"    epoch {event['epoch']}: train loss {event['train_loss']:.3f}, "
              f"val accuracy {event.get('val_accuracy', 0):.3f}, val macro-F1 {event.get('val_macro_f1', 0):.3f}, "
              f"{event['seconds']:.0f} s", flush=True)

    params = {"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
              "layer_decay": args.layer_decay, "class_weighting": args.class_weighting,
              "max_length": args.max_length, "seed": seed, "patience": args.patience}
    seconds, result = _common.timed(
        training.train_encoder, base_path=specs.resolve(args.base), kind="classifier", train=rows("train"),
        validation=rows("validation"), labels=LABELS, params=params, work_dir=work_dir,
        callbacks=training.Callbacks(on_epoch=on_epoch), base_spec=args.base,
    )
    return {"seed": seed, "params": params, "seconds": round(seconds, 1), "best_dir": str(result.best_dir),
            "epochs_run": result.epochs_run, "validation": result.metrics, "history": result.history}


def slug(spec: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in spec).strip("-")


def probabilities(model_dir: str, texts: list[str], *, int8: bool = True) -> list[dict]:
    """Class probabilities as the app serves them: on CPU with dynamic int8 (MLCORE_CPU_INT8), or fp32."""
    from django.conf import settings

    from mlcore import runtime

    settings.MLCORE_CPU_INT8 = frozenset({"classifier"} if int8 else ())
    runtime.cache.clear()
    return [p["scores"] for p in runtime.classify(model_dir, texts)]


def report(test: list[dict], scores: list[dict]) -> dict:
    from mlcore import metrics

    pred = [max(s, key=s.get) for s in scores]
    gold = [r["label"] for r in test]
    everything = metrics.classification_report(gold, pred, LABELS)
    allagree = [i for i, r in enumerate(test) if r["level"] == "All"]
    strict = metrics.classification_report([gold[i] for i in allagree], [pred[i] for i in allagree], LABELS)
    return {"50agree": everything, "allagree": strict}


def seed_model_dir() -> tuple[str | None, str]:
    from mlcore.api import NoActiveVersion, Task, active_version, version_path

    try:
        version = active_version(task=Task.FINANCE_SENTIMENT)
    except NoActiveVersion:
        return None, "no active finance.sentiment version (run `make setup` to train the seed model)"
    label = version.name or version.base_spec
    return version_path(version), f"active finance.sentiment version #{version.pk} ({label})"


def main(argv=None) -> int:
    args = parse_args(argv)
    if _common.missing_data("finance_sentiment", args.data, [f"Sentences_{lvl}Agree.txt" for lvl in LEVELS]):
        return 2
    started = time.monotonic()
    _common.setup_django()
    _common.set_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]

    print(f"Reading {args.data} ...")
    splits, data_info = load_splits(args)
    print("  " + ", ".join(f"{k} {v}" for k, v in data_info.items()))
    test, texts = splits["test"], [r["text"] for r in splits["test"]]

    rows, results = [], {"seed_model": None, "fine_tuned": [], "ensemble": None}
    seed_dir, seed_note = seed_model_dir()
    print(f"Seed model: {seed_note}")
    if seed_dir:
        results["seed_model"] = {"model": seed_note, **report(test, probabilities(seed_dir, texts))}
        rows.append(["app seed model, out of the box (demo seed set, no PhraseBank; int8)", results["seed_model"]])

    all_scores, name = [], "MiniLM-L6" if args.base == "package:minilm" else args.base
    for seed in seeds:
        print(f"Fine-tuning {name}, seed {seed}: {len(splits['train'])} train, {len(splits['validation'])} validation")
        trained = fine_tune(splits, args, seed)
        scores = probabilities(trained["best_dir"], texts)
        all_scores.append(scores)
        trained.update(report(test, scores))
        trained["fp32"] = report(test, probabilities(trained["best_dir"], texts, int8=False))
        results["fine_tuned"].append(trained)
        print(f"  done in {trained['seconds']:.0f} s, {trained['epochs_run']} epochs; "
              f"test 50agree {trained['50agree']['accuracy']:.3f} / {trained['50agree']['macro_f1']:.3f}", flush=True)
        rows.append([f"{name} fine-tuned, seed {seed} (int8, as served on CPU)", trained])
        rows.append([f"{name} fine-tuned, seed {seed} (fp32)", trained["fp32"]])
    if len(all_scores) > 1:
        mean = [{label: sum(s[i][label] for s in all_scores) / len(all_scores) for label in LABELS}
                for i in range(len(texts))]
        results["ensemble"] = {"seeds": seeds, **report(test, mean)}
        rows.append([f"{name}, mean of {len(seeds)} seeds' probabilities (int8)", results["ensemble"]])

    headers = ["model", "50agree accuracy", "50agree macro-F1", "allagree accuracy", "allagree macro-F1"]
    table_rows = [[name, f"{r['50agree']['accuracy']:.3f}", f"{r['50agree']['macro_f1']:.3f}",
                   f"{r['allagree']['accuracy']:.3f}", f"{r['allagree']['macro_f1']:.3f}"] for name, r in rows]
    print()
    print(f"Test split: {len(test)} sentences (50Agree), of which {data_info['test_allagree_rows']} AllAgree")
    print(_common.table(headers, table_rows))
    elapsed = time.monotonic() - started
    print(f"\nTotal {elapsed / 60:.1f} min. Goals: 50agree >= 0.88 / 0.86, allagree >= 0.97 accuracy.")
    path = _common.write_result("finance_sentiment", {
        "command": " ".join(sys.argv), "args": {k: str(v) for k, v in vars(args).items()}, "data": data_info,
        "machine": _common.machine(args.threads), "results": results, "seconds": round(elapsed, 1),
    })
    print(f"Saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

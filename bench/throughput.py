"""Sentiment classifier throughput and accuracy: MiniLM (through mlcore.runtime) vs a BERT-base-sized encoder.

What it measures, on the real Financial PhraseBank sentences, on CPU with 2 torch threads:

1. Accuracy. all-MiniLM-L6-v2 is fine-tuned as a 3-class classifier with `mlcore.training.train_encoder`
   on the train split of `Sentences_50Agree.txt` (read with `mlcore.data.read_phrasebank`, then
   `clean_and_dedup` and `assign_splits`, the same pipeline the app uses). Test-split accuracy and
   macro-F1 are reported for the fine-tuned model in fp32 (predicted by `mlcore.runtime.classify`), for a
   dynamic-int8 copy of the same model (`torch.ao.quantization.quantize_dynamic` on its Linear layers), and
   as `mlcore.runtime.classify` serves it through ONNX Runtime (MLCORE_ENCODER_BACKEND=onnx), fp32 and int8.
2. Speed, in sentences per second, on 1,000 PhraseBank sentences spread over the cleaned set (the BERT-base
   rows on an evenly spaced 300 of them) and on the headline-length ones (at most 16 tokens):
   - MiniLM through `mlcore.runtime.classify` (length-sorted batches of 64, dynamic padding), fp32 and int8
     (the int8 row swaps the quantised model into the runtime's cache entry, so the same code path runs);
   - MiniLM through `mlcore.runtime.classify` on ONNX Runtime, fp32 and int8 (the graphs `mlcore.onnx_serving`
     exports and quantises, swapped into the runtime's cache entry the same way);
   - MiniLM in a plain loop, batches of 32 padded to `--max-length` (the naive baseline, for contrast);
   - a BERT-base-sized classifier (BertConfig defaults: 12 layers, hidden 768, 110 M parameters; random
     weights, which cost the same time as trained ones) with the MiniLM tokenizer, in the same
     length-sorted dynamic-padding loop as the runtime, fp32 and int8, in torch and (exported by
     `mlcore.onnx_serving` from a saved copy) in ONNX Runtime.

Speeds are the best of `--repeats` passes after a warm-up pass. Every row records how much CPU other
processes used meanwhile and is measured again (up to `--tries`) when they took more than 15% of the cores.

Goals being checked: MiniLM >= 10x BERT-base sentences/s, and >= 1,000 sentences/s on 2 cores.

Run (about 10 minutes on 2 quiet cores, 5.5 of them fine-tuning; results go to var/bench/throughput-*.json):

    .venv/bin/python bench/throughput.py [--data ../shared/data/financial_phrasebank] [--sentences 1000]
        [--train-epochs 3] [--file Sentences_50Agree.txt]

`--train-epochs 0` skips fine-tuning and the accuracy rows (speed only, with an untrained head).
Before the speed section the script waits (up to `--max-wait` s) until the 1-minute load average is below
`--max-load` or other processes use under 5% of the cores.
Exit code 2 means the data folder (or the file in it) is missing.
"""

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

import _common  # bench/ is sys.path[0] when this file runs as a script

LABELS = ["positive", "neutral", "negative"]
DEFAULT_DATA = _common.REPO.parent / "shared" / "data" / "financial_phrasebank"
WORK_DIR = _common.RESULTS_DIR / "throughput-minilm"
BERT_DIR = _common.RESULTS_DIR / "throughput-bert-base"  # the random BERT-base, saved for the ONNX export


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"Financial PhraseBank folder (default {DEFAULT_DATA})")
    parser.add_argument("--file", default="Sentences_50Agree.txt",
                        help="agreement level to use (default Sentences_50Agree.txt, all 4,846 sentences)")
    parser.add_argument("--sentences", type=int, default=1000,
                        help="sentences timed per speed row (evenly spaced over the cleaned set; default 1000)")
    parser.add_argument("--bert-sentences", type=int, default=300,
                        help="sentences for the BERT-base rows, evenly spaced over the same sample (default 300; "
                             "BERT-base is about 7x slower, and its rate does not depend on the count)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per speed row (default 3)")
    parser.add_argument("--train-epochs", type=int, default=3, help="fine-tuning epochs (default 3; 0 = skip)")
    parser.add_argument("--max-length", type=int, default=64, help="training / padded-baseline length (default 64)")
    parser.add_argument("--headline-tokens", type=int, default=16,
                        help="also time the sentences of at most this many tokens (default 16; 0 = skip)")
    parser.add_argument("--batch-size", type=int, default=64, help="inference batch size (runtime default 64)")
    _common.add_common_arguments(parser)
    return parser.parse_args(argv)


def load_rows(path: Path):
    from mlcore import data

    raw = data.read_phrasebank(path.read_bytes(), filename=path.name)
    clean = data.clean_and_dedup(raw.rows)
    splits = data.assign_splits(clean.rows)
    info = {
        "file": path.name, "read": len(raw.rows), "rejected_on_read": len(raw.rejected),
        "exact_duplicates": clean.exact_duplicates, "near_duplicates": clean.near_duplicates,
        "kept": len(clean.rows), **{f"{name}_rows": len(rows) for name, rows in splits.items()},
    }
    return clean.rows, splits, info


def evenly_spaced(items: list, n: int) -> list:
    if n >= len(items):
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def token_stats(tokenizer, texts: list[str]) -> dict:
    lengths = sorted(len(ids) for ids in tokenizer(texts, truncation=False)["input_ids"])
    return {
        "mean": round(statistics.mean(lengths), 1), "median": statistics.median(lengths),
        "p95": lengths[int(0.95 * (len(lengths) - 1))], "max": lengths[-1],
        "words_mean": round(statistics.mean(len(t.split()) for t in texts), 1),
    }


def quantize(model):
    import torch

    return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def predict_sorted(model, tokenizer, texts: list[str], *, batch_size: int, max_length: int) -> list[int]:
    """Class ids, with the runtime's batching: longest first, batches padded to their own longest text."""
    import torch

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    out = [0] * len(texts)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt")
            for i, label in zip(idx, model(**enc).logits.argmax(-1).tolist(), strict=True):
                out[i] = label
    return out


def predict_padded(model, tokenizer, texts: list[str], *, batch_size: int, max_length: int) -> list[int]:
    """The naive loop: input order, every batch padded to `max_length`."""
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start : start + batch_size], padding="max_length", truncation=True,
                            max_length=max_length, return_tensors="pt")
            out.extend(model(**enc).logits.argmax(-1).tolist())
    return out


def rate(fn, n: int, repeats: int) -> dict:
    fn()  # warm-up: first-call allocations, oneDNN primitive creation
    times = [_common.timed(fn)[0] for _ in range(repeats)]
    s = _common.summary(times)
    return {"sentences": n, "seconds_best": round(s["best"], 3), "seconds_runs": s["runs"],
            "sentences_per_s": round(n / s["best"], 1), "sentences_per_s_median": round(n / s["median"], 1)}


def fine_tune(splits, args) -> dict:
    from mlcore import specs, training

    base = specs.resolve("package:minilm")
    if WORK_DIR.exists():  # train_encoder resumes from a checkpoint it finds; a benchmark starts fresh
        shutil.rmtree(WORK_DIR)

    def rows(name):
        return [{"text": r.text, "label": r.label} for r in splits[name]]

    def on_epoch(event):
        print(f"  epoch {event['epoch']}: train loss {event['train_loss']:.3f}, "
              f"val accuracy {event.get('val_accuracy', 0):.3f}, val macro-F1 {event.get('val_macro_f1', 0):.3f}, "
              f"{event['seconds']:.0f} s")

    params = {"epochs": args.train_epochs, "batch_size": 16, "learning_rate": 5e-5, "max_length": args.max_length,
              "seed": 13, "patience": 2}
    seconds, result = _common.timed(
        training.train_encoder, base_path=base, kind="classifier", train=rows("train"), validation=rows("validation"),
        labels=LABELS, params=params, work_dir=WORK_DIR, callbacks=training.Callbacks(on_epoch=on_epoch),
        base_spec="package:minilm",
    )
    return {"params": params, "seconds": round(seconds, 1), "best_dir": str(result.best_dir),
            "epochs_run": result.epochs_run, "validation": result.metrics, "history": result.history}


def serve_as(backend: str, *, int8: bool) -> None:
    """Settings for `mlcore.runtime` as a worker would have them, and an empty model cache to load afresh."""
    from django.conf import settings

    from mlcore import runtime

    settings.MLCORE_ENCODER_BACKEND = backend
    settings.MLCORE_CPU_INT8 = frozenset({"classifier"} if int8 else ())
    runtime.cache.clear()


def accuracy_rows(model_dir: str, test, args) -> dict:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from mlcore import metrics, runtime

    texts, gold = [r.text for r in test], [r.label for r in test]

    def served(backend, int8):
        serve_as(backend, int8=int8)
        return [p["label"] for p in runtime.classify(model_dir, texts, batch_size=args.batch_size)]

    fp32 = served("torch", False)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = quantize(AutoModelForSequenceClassification.from_pretrained(model_dir).eval())
    int8 = [LABELS[i] for i in predict_sorted(model, tokenizer, texts, batch_size=args.batch_size, max_length=256)]
    onnx_fp32, onnx_int8 = served("onnx", False), served("onnx", True)
    serve_as("torch", int8=False)

    def agreement(a, b):
        return round(sum(x == y for x, y in zip(a, b, strict=True)) / len(texts), 4)

    return {
        "fp32": metrics.classification_report(gold, fp32, LABELS),
        "int8": metrics.classification_report(gold, int8, LABELS),
        "onnx_fp32": metrics.classification_report(gold, onnx_fp32, LABELS),
        "onnx_int8": metrics.classification_report(gold, onnx_int8, LABELS),
        "fp32_int8_agreement": agreement(fp32, int8),
        "fp32_onnx_fp32_agreement": agreement(fp32, onnx_fp32),
        "fp32_onnx_int8_agreement": agreement(fp32, onnx_int8),
    }


def speed_rows(model_dir: str, texts: list[str], bert_texts: list[str], short_texts: list[str], args) -> dict:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from mlcore import onnx_serving, runtime

    bs = args.batch_size
    rows = {}
    serve_as("torch", int8=False)
    loaded = runtime.encoder(model_dir, "classifier")
    fp32_model, tok = loaded.model, loaded.tokenizer
    int8_model = quantize(fp32_model)

    def exported(path, key, int8):
        # The first load exports (and quantises) and caches the graph; its time is reported, not in the rates.
        seconds, model = _common.timed(onnx_serving.load, str(path), "classifier", int8=int8)
        rows[key] = {"load_seconds": round(seconds, 1), "file": str(model.file),
                     "file_mb": round(model.file.stat().st_size / 2**20, 1)}
        return model

    onnx_fp32 = exported(model_dir, "minilm_fp32_onnx_export", False)
    onnx_int8 = exported(model_dir, "minilm_int8_onnx_export", True)

    def measure(key, fn, sample):
        row, other, attempts = _common.measure_clean(
            lambda: rate(lambda: fn(sample), len(sample), args.repeats), tries=args.tries)
        rows[key] = {**row, "other_load": other, "attempts": attempts}
        print(f"  {key:<36} {row['sentences_per_s']:>8.1f} sentences/s  (best of {args.repeats}: "
              f"{row['seconds_best']:.2f} s for {row['sentences']}; others used "
              f"{100 * other['others_share_of_cores']:.0f}% of the cores)")

    def through_runtime(model):
        def classify(sample):
            # The runtime's cache entry serves `model`: the same code path, fp32 or quantised weights.
            loaded.model = model
            try:
                return runtime.classify(model_dir, sample, batch_size=bs)
            finally:
                loaded.model = fp32_model
        return classify

    def sorted_loop(model, tokenizer):
        return lambda sample: predict_sorted(model, tokenizer, sample, batch_size=bs, max_length=256)

    torch.manual_seed(0)
    bert_tok = AutoTokenizer.from_pretrained(model_dir)
    bert = BertForSequenceClassification(BertConfig(vocab_size=bert_tok.vocab_size, num_labels=3)).eval()
    bert_int8 = quantize(bert)
    bert.save_pretrained(BERT_DIR)
    bert_tok.save_pretrained(BERT_DIR)
    bert_onnx = exported(BERT_DIR, "bert_base_fp32_onnx_export", False)
    bert_onnx_int8 = exported(BERT_DIR, "bert_base_int8_onnx_export", True)

    measure("minilm_fp32_runtime", through_runtime(fp32_model), texts)
    measure("minilm_int8_runtime", through_runtime(int8_model), texts)
    measure("minilm_fp32_onnx_runtime", through_runtime(onnx_fp32), texts)
    measure("minilm_int8_onnx_runtime", through_runtime(onnx_int8), texts)
    measure("minilm_fp32_padded", lambda sample: predict_padded(fp32_model, tok, sample, batch_size=32,
                                                                max_length=args.max_length), texts)
    measure("minilm_fp32_sorted_loop", sorted_loop(fp32_model, tok), texts)
    measure("bert_base_fp32_sorted_loop", sorted_loop(bert, bert_tok), bert_texts)
    measure("bert_base_int8_sorted_loop", sorted_loop(bert_int8, bert_tok), bert_texts)
    measure("bert_base_fp32_onnx_sorted_loop", sorted_loop(bert_onnx, bert_tok), bert_texts)
    measure("bert_base_int8_onnx_sorted_loop", sorted_loop(bert_onnx_int8, bert_tok), bert_texts)
    if short_texts:
        measure("minilm_fp32_runtime_headline", through_runtime(fp32_model), short_texts)
        measure("minilm_int8_runtime_headline", through_runtime(int8_model), short_texts)
        measure("minilm_fp32_onnx_runtime_headline", through_runtime(onnx_fp32), short_texts)
        measure("minilm_int8_onnx_runtime_headline", through_runtime(onnx_int8), short_texts)
        bert_short = evenly_spaced(short_texts, len(bert_texts))
        measure("bert_base_fp32_sorted_loop_headline", sorted_loop(bert, bert_tok), bert_short)
        measure("bert_base_int8_sorted_loop_headline", sorted_loop(bert_int8, bert_tok), bert_short)
        measure("bert_base_fp32_onnx_sorted_loop_headline", sorted_loop(bert_onnx, bert_tok), bert_short)
        measure("bert_base_int8_onnx_sorted_loop_headline", sorted_loop(bert_onnx_int8, bert_tok), bert_short)
    rows["bert_base_parameters"] = sum(p.numel() for p in bert.parameters())
    rows["minilm_parameters"] = sum(p.numel() for p in fp32_model.parameters())
    rows["bert_base_encoder_linear_macs_per_token"] = encoder_macs(bert)
    rows["minilm_encoder_linear_macs_per_token"] = encoder_macs(fp32_model)
    return rows


def encoder_macs(model) -> int:
    """Multiply-accumulates per token in the encoder's Linear layers: the work that scales with model size."""
    import torch

    return sum(m.in_features * m.out_features for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and "encoder" in name)


def main(argv=None) -> int:
    args = parse_args(argv)
    data_file = args.data / args.file
    if _common.missing_data("throughput", args.data, [args.file]):
        return 2
    started = time.monotonic()
    _common.setup_django()
    _common.set_threads(args.threads)
    from mlcore import specs

    print(f"Reading {data_file} ...")
    all_rows, splits, data_info = load_rows(data_file)
    print("  " + ", ".join(f"{k} {v}" for k, v in data_info.items() if k != "file"))

    training_info, model_dir = None, specs.resolve("package:minilm")
    if args.train_epochs > 0:
        print(f"Fine-tuning MiniLM for {args.train_epochs} epochs on {len(splits['train'])} sentences ...")
        training_info = fine_tune(splits, args)
        model_dir = training_info["best_dir"]
        print(f"  done in {training_info['seconds']:.0f} s (best epoch kept in {model_dir})")
    else:
        print("--train-epochs 0: speed only, with the untrained MiniLM classification head")

    texts = [r.text for r in evenly_spaced(all_rows, args.sentences)]
    bert_texts = evenly_spaced(texts, min(args.bert_sentences, len(texts)))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    stats, bert_stats = token_stats(tokenizer, texts), token_stats(tokenizer, bert_texts)
    print(f"Speed sentences: {len(texts)} (tokens per sentence: mean {stats['mean']}, median {stats['median']}, "
          f"p95 {stats['p95']}, max {stats['max']}; words mean {stats['words_mean']})")
    # PhraseBank sentences are whole news sentences (about 23 words), longer than a headline (about 10-12
    # words), so the same models are also timed on the sentences no longer than a headline.
    all_texts = [r.text for r in all_rows]
    lengths = [len(ids) for ids in tokenizer(all_texts)["input_ids"]]
    short_pool = [t for t, n in zip(all_texts, lengths, strict=True) if n <= args.headline_tokens]
    short_texts = evenly_spaced(short_pool, args.sentences) if args.headline_tokens > 0 else []
    short_stats = token_stats(tokenizer, short_texts) if short_texts else None
    if short_stats:
        print(f"Headline-length subset: {len(short_texts)} of the {len(short_pool)} sentences with <= "
              f"{args.headline_tokens} tokens (mean {short_stats['mean']} tokens, {short_stats['words_mean']} words)")
    load_before, waited = _common.wait_for_quiet_machine(args.max_load, args.max_wait)
    info = _common.machine(args.threads)
    print("Machine: " + _common.describe(info))
    with _common.OtherLoad() as other:
        speed = speed_rows(model_dir, texts, bert_texts, short_texts, args)
    info["load_average_after_speed"] = [round(x, 2) for x in _common.load_average()]
    info["other_load_during_speed"] = other.result()

    accuracy = None
    if args.train_epochs > 0:
        print(f"Test split ({len(splits['test'])} sentences): fp32 through mlcore.runtime, int8 quantised copy ...")
        accuracy = accuracy_rows(model_dir, splits["test"], args)

    def sps(key):
        return speed[key]["sentences_per_s"]

    speed_labels = [
        ("minilm_fp32_runtime", "MiniLM-L6 fp32, mlcore.runtime.classify (sorted, dynamic padding)"),
        ("minilm_int8_runtime", "MiniLM-L6 int8, mlcore.runtime.classify (sorted, dynamic padding)"),
        ("minilm_fp32_onnx_runtime", "MiniLM-L6 fp32, ONNX Runtime through mlcore.runtime.classify"),
        ("minilm_int8_onnx_runtime", "MiniLM-L6 int8, ONNX Runtime through mlcore.runtime.classify"),
        ("minilm_fp32_sorted_loop", "MiniLM-L6 fp32, bench loop (sorted, dynamic padding)"),
        ("minilm_fp32_padded", f"MiniLM-L6 fp32, naive loop (bs 32, padded to {args.max_length})"),
        ("bert_base_fp32_sorted_loop", "BERT-base fp32, bench loop (sorted, dynamic padding)"),
        ("bert_base_int8_sorted_loop", "BERT-base int8, bench loop (sorted, dynamic padding)"),
        ("bert_base_fp32_onnx_sorted_loop", "BERT-base fp32, ONNX Runtime, bench loop"),
        ("bert_base_int8_onnx_sorted_loop", "BERT-base int8, ONNX Runtime, bench loop"),
    ]
    headers = ["model / path", f"sentences/s, PhraseBank sample ({stats['mean']} tokens)", "x BERT-base fp32"]
    if short_texts:
        headers += [f"sentences/s, headline-length ({short_stats['mean']} tokens)", "x BERT-base fp32 (same subset)"]
    rows = []
    for key, label in speed_labels:
        row = [label, f"{sps(key):.0f}", f"{sps(key) / sps('bert_base_fp32_sorted_loop'):.1f}x"]
        if short_texts:
            short = key + "_headline"
            row += ([f"{sps(short):.0f}", f"{sps(short) / sps('bert_base_fp32_sorted_loop_headline'):.1f}x"]
                    if short in speed else ["-", "-"])
        rows.append(row)
    print()
    print(_common.table(headers, rows))
    macs_minilm = speed["minilm_encoder_linear_macs_per_token"]
    macs_bert = speed["bert_base_encoder_linear_macs_per_token"]
    print(f"MiniLM rows timed on {len(texts)} sentences, BERT-base rows on {len(bert_texts)} of them "
          f"({bert_stats['mean']} tokens); headline subset {len(short_texts)} / "
          f"{min(len(short_texts), len(bert_texts))}.")
    print(f"Encoder Linear work per token: MiniLM {macs_minilm / 1e6:.1f} M MACs, BERT-base {macs_bert / 1e6:.1f} M "
          f"({macs_bert / macs_minilm:.1f}x)")
    if accuracy:
        val = training_info["validation"]
        print()
        print(_common.table(
            ["fine-tuned MiniLM-L6", f"test accuracy (n={accuracy['fp32']['n']})", "test macro-F1"],
            [["fp32 (mlcore.runtime.classify)", f"{accuracy['fp32']['accuracy']:.3f}",
              f"{accuracy['fp32']['macro_f1']:.3f}"],
             ["int8 (quantize_dynamic copy)", f"{accuracy['int8']['accuracy']:.3f}",
              f"{accuracy['int8']['macro_f1']:.3f}"],
             ["ONNX Runtime fp32 (mlcore.runtime.classify)", f"{accuracy['onnx_fp32']['accuracy']:.3f}",
              f"{accuracy['onnx_fp32']['macro_f1']:.3f}"],
             ["ONNX Runtime int8 (mlcore.runtime.classify)", f"{accuracy['onnx_int8']['accuracy']:.3f}",
              f"{accuracy['onnx_int8']['macro_f1']:.3f}"]]))
        print(f"Validation split, best of {training_info['epochs_run']} epochs: accuracy "
              f"{val.get('accuracy', 0):.3f}, macro-F1 {val.get('macro_f1', 0):.3f}")

    def goal_figures(suffix: str) -> dict:
        fp32, int8 = sps("minilm_fp32_runtime" + suffix), sps("minilm_int8_runtime" + suffix)
        bert_fp32, bert_int8 = sps("bert_base_fp32_sorted_loop" + suffix), sps("bert_base_int8_sorted_loop" + suffix)
        onnx_fp32, onnx_int8 = sps("minilm_fp32_onnx_runtime" + suffix), sps("minilm_int8_onnx_runtime" + suffix)
        bert_onnx_fp32 = sps("bert_base_fp32_onnx_sorted_loop" + suffix)
        bert_onnx_int8 = sps("bert_base_int8_onnx_sorted_loop" + suffix)
        best = max(fp32, int8, onnx_fp32, onnx_int8)
        return {
            "speedup_fp32_vs_bert_fp32": round(fp32 / bert_fp32, 2),
            "speedup_int8_vs_bert_int8": round(int8 / bert_int8, 2),
            "ratio_goal_10x_met": fp32 / bert_fp32 >= 10 and int8 / bert_int8 >= 10,
            "onnx_speedup_fp32_vs_bert_fp32": round(onnx_fp32 / bert_onnx_fp32, 2),
            "onnx_speedup_int8_vs_bert_int8": round(onnx_int8 / bert_onnx_int8, 2),
            "onnx_ratio_goal_10x_met": onnx_fp32 / bert_onnx_fp32 >= 10 and onnx_int8 / bert_onnx_int8 >= 10,
            "best_minilm_sentences_per_s": best,
            "throughput_goal_1000_met": best >= 1000,
        }

    goals = goal_figures("")
    best_minilm = goals["best_minilm_sentences_per_s"]
    if short_texts:
        goals["headline_subset"] = goal_figures("_headline")
    print()
    print(f"Goal MiniLM >= 10x BERT-base: torch fp32 {goals['speedup_fp32_vs_bert_fp32']}x, "
          f"int8 {goals['speedup_int8_vs_bert_int8']}x -> {'met' if goals['ratio_goal_10x_met'] else 'NOT met'}; "
          f"ONNX Runtime fp32 {goals['onnx_speedup_fp32_vs_bert_fp32']}x, int8 "
          f"{goals['onnx_speedup_int8_vs_bert_int8']}x -> {'met' if goals['onnx_ratio_goal_10x_met'] else 'NOT met'}")
    print(f"Goal >= 1,000 sentences/s on {args.threads} threads: best MiniLM path {best_minilm:.0f}/s -> "
          f"{'met' if goals['throughput_goal_1000_met'] else 'NOT met'}")
    if short_texts:
        head = goals["headline_subset"]
        print(f"Headline-length subset: MiniLM vs BERT-base torch fp32 {head['speedup_fp32_vs_bert_fp32']}x, "
              f"int8 {head['speedup_int8_vs_bert_int8']}x -> 10x goal "
              f"{'met' if head['ratio_goal_10x_met'] else 'NOT met'}; ONNX Runtime fp32 "
              f"{head['onnx_speedup_fp32_vs_bert_fp32']}x, int8 {head['onnx_speedup_int8_vs_bert_int8']}x -> "
              f"{'met' if head['onnx_ratio_goal_10x_met'] else 'NOT met'}; "
              f"best MiniLM path {head['best_minilm_sentences_per_s']:.0f}/s -> 1,000/s goal "
              f"{'met' if head['throughput_goal_1000_met'] else 'NOT met'}")
    if accuracy:
        print(f"Predictions agreeing with torch fp32 on the test split: torch int8 "
              f"{100 * accuracy['fp32_int8_agreement']:.1f}%, ONNX Runtime fp32 "
              f"{100 * accuracy['fp32_onnx_fp32_agreement']:.1f}%, "
              f"int8 {100 * accuracy['fp32_onnx_int8_agreement']:.1f}%")
    total = time.monotonic() - started
    print(f"Load average before speed {load_before:.2f} (waited {waited:.0f} s), after "
          f"{info['load_average_after_speed'][0]:.2f}; {_common.describe_other_load(info['other_load_during_speed'])}"
          f"; whole script {total:.0f} s")

    result = {
        "benchmark": "throughput", "command": " ".join(["bench/throughput.py", *(argv or sys.argv[1:])]),
        "machine": info, "data": data_info, "token_stats": stats, "token_stats_bert_sample": bert_stats,
        "headline_subset": {"max_tokens": args.headline_tokens, "pool": len(short_pool), "token_stats": short_stats},
        "training": training_info,
        "speed": speed, "accuracy": accuracy, "goals": goals, "seconds_total": round(total, 1),
    }
    print(f"Saved {_common.write_result('throughput', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

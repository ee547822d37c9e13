"""Story model quality and speed: perplexity and Story Cloze accuracy before and after a story LoRA, and the
generation speed of story and NPC requests.

Protocol:

1. Read the ROCStories Story Cloze 2016 validation file (`cloze_test_val__spring2016.csv`, 1,871 five-sentence
   stories with a right and a wrong fifth sentence). A seeded shuffle splits it into a training part and an
   evaluation part (`--eval-share`, default 0.3); `--limit` keeps only the first N stories of the shuffle.
2. Train a LoRA adapter with `mlcore.training.train_lora` (the code the app's style fine-tunes run) on the
   training stories with their *right* endings only; 10% of the training part is its validation split (the
   only thing used to keep the best epoch, and to tune). The evaluation part is never trained on. Each story
   is a sequence of its own (`packing` off), as the evaluation scores it, so the loop's validation
   perplexity is the evaluation's measure; `--pack` packs stories into `--block-size` blocks instead (the
   old way: several times fewer optimizer steps, and it teaches continuing across stories).
3. Before and after, on the evaluation stories: perplexity of the full right-ending story
   (`mlcore.runtime.perplexity`, each story scored on its own), and Story Cloze accuracy: the ending whose
   tokens have the higher mean log-likelihood after the four-sentence context is the model's choice (the
   issue's metric; the goals are judged on it). A second, PMI-normalised accuracy is printed apart (see
   `cloze`). `--adapter` evaluates an adapter an earlier train_lora run left instead of training one;
   `--eval-limit` scores only the first N evaluation stories (on a machine too busy for all of them).
4. Speed on `--threads` cores through `mlcore.runtime.generate` (the app's code path, chat=False as the
   studio sends its own prompts): time to first token and tokens/s for a story continuation (base model as
   served, and with the LoRA, which forces the transformers backend) and an NPC reply (base model: adapters
   are kept per purpose, NPC replies never use the story adapter). Best of `--runs`, seeded sampling with
   the studio's "balanced" preset.

Starting point measured by the issue: SmolLM2-135M ~33 perplexity and ~65% Cloze; one epoch (r=8, q/k/v/o,
lr 2e-4) gives ~20 and ~69%. Goals: perplexity <= 16 and Cloze >= 75%.

Run (about 12 minutes on 2 quiet cores for one epoch; results in var/bench/story_lm-*.json):

    .venv/bin/python bench/story_lm.py --data ../shared/data/rocstories_story_cloze_2016 [--epochs 1]
        [--lora-r 16] [--no-lora-mlp] [--learning-rate 1e-3] [--pack] [--eval-share 0.3] [--split-seed 2026]
        [--limit N] [--no-train] [--adapter DIR] [--eval-limit N]

Quick check (a minute or two): `--limit 40 --epochs 1 --runs 1 --max-new-tokens 16`.
Exit code 2 means the data file is missing.
"""

import argparse
import csv
import io
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path

import _common  # bench/ is sys.path[0] when this file runs as a script

FILENAME = "cloze_test_val__spring2016.csv"
COLUMNS = ["InputStoryid", "InputSentence1", "InputSentence2", "InputSentence3", "InputSentence4",
           "RandomFifthSentenceQuiz1", "RandomFifthSentenceQuiz2", "AnswerRightEnding"]
DEFAULT_DATA = _common.REPO.parent / "shared" / "data" / "rocstories_story_cloze_2016"
WORK_DIR = _common.RESULTS_DIR / "story-lm"
BALANCED = {"temperature": 0.8, "top_p": 0.95, "top_k": 50, "repetition_penalty": 1.1}
NPC_PROMPT = (
    "[Character: Maren]\nPersona: The lighthouse keeper of Gull Rock, sixty, wry and watchful.\n"
    "Speaking style: Short sentences, sea words.\nGoals: Keep the lamp lit; keep strangers off the rock.\n"
    "Knows: The lamp has gone dark twice this winter.\n\nScene: Night; rain on the glass.\n\n"
    "Maren: Who knocks at the lighthouse door at this hour?\nPlayer: A traveller. My boat broke on the rocks.\n"
    "Maren:"
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"folder with {FILENAME}")
    parser.add_argument("--model", default="", help="model spec or folder (default: the app's LM spec)")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N stories of the shuffle (0: all)")
    parser.add_argument("--eval-share", type=float, default=0.3, help="evaluation share (default 0.3)")
    parser.add_argument("--split-seed", type=int, default=2026, help="seed of the split (default 2026)")
    parser.add_argument("--epochs", type=int, default=1, help="LoRA epochs (default 1)")
    parser.add_argument("--lora-r", type=int, default=16, help="LoRA rank (default 16; alpha is twice the rank)")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    parser.add_argument("--batch-size", type=int, default=8, help="training batch size (default 8)")
    parser.add_argument("--block-size", type=int, default=256, help="most tokens in a training sequence (default 256)")
    parser.add_argument("--pack", action="store_true",
                        help="pack the stories into blocks of --block-size tokens (default: each story alone)")
    parser.add_argument("--lora-mlp", action=argparse.BooleanOptionalAction, default=True,
                        help="adapt the MLP projections too, not only attention (default: yes)")
    parser.add_argument("--seed", type=int, default=13, help="training and sampling seed (default 13)")
    parser.add_argument("--no-train", action="store_true", help="measure the base model only")
    parser.add_argument("--adapter", type=Path, default=None,
                        help="evaluate this adapter (the best/ folder of an earlier train_lora run on the same "
                             "training part, with the settings given here) instead of training one")
    parser.add_argument("--eval-limit", type=int, default=0,
                        help="score only the first N evaluation stories (0: all; for a busy machine)")
    parser.add_argument("--runs", type=int, default=3, help="timed generations per row, best kept (default 3)")
    parser.add_argument("--max-new-tokens", type=int, default=80, help="tokens per timed generation (default 80)")
    parser.add_argument("--threads", type=int, default=_common.DEFAULT_THREADS, help="torch threads (default 2)")
    return parser.parse_args(argv)


def read_stories(path: Path) -> list[dict]:
    """The stories with their two endings; a malformed row stops the run with its line number."""
    reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise SystemExit(f"story_lm: {path} lacks the columns {', '.join(missing)}")
    stories = []
    for line, row in enumerate(reader, start=2):
        if row["AnswerRightEnding"] not in ("1", "2"):
            raise SystemExit(f"story_lm: {path} line {line}: AnswerRightEnding is {row['AnswerRightEnding']!r}")
        right = int(row["AnswerRightEnding"])
        stories.append({
            "id": row["InputStoryid"],
            "context": " ".join(row[f"InputSentence{i}"].strip() for i in range(1, 5)),
            "right": row[f"RandomFifthSentenceQuiz{right}"].strip(),
            "wrong": row[f"RandomFifthSentenceQuiz{3 - right}"].strip(),
        })
    return stories


def split(stories: list[dict], args) -> tuple[list[dict], list[dict], list[dict]]:
    """(train, validation, evaluation) from a seeded shuffle of the stories sorted by id."""
    ordered = sorted(stories, key=lambda s: s["id"])
    random.Random(args.split_seed).shuffle(ordered)
    if args.limit:
        ordered = ordered[:args.limit]
    n_eval = max(1, round(len(ordered) * args.eval_share))
    evaluation, train_all = ordered[:n_eval], ordered[n_eval:]
    n_val = max(1, round(len(train_all) * 0.1)) if len(train_all) > 1 else 0
    assert not ({s["id"] for s in evaluation} & {s["id"] for s in train_all}), "a story crossed the split"
    return train_all[n_val:], train_all[:n_val], evaluation


def full_text(story: dict) -> str:
    return f"{story['context']} {story['right']}"


def cloze(path: str, stories: list[dict], adapter: str | None) -> dict:
    """Story Cloze accuracy, the issue's metric (the goal is judged on it): the ending with the higher mean
    per-token log-likelihood after the four-sentence context is the model's choice.

    Also a normalised accuracy, reported apart: the ending's summed log-likelihood after the context minus
    after the end-of-text token alone (pointwise mutual information, as in the LM literature), which
    discounts an ending that is likely whatever story came before it.
    """
    import torch

    from mlcore import runtime

    loaded = runtime.causal_lm(path, adapter)
    tok, model = loaded.tokenizer, loaded.model
    no_story = [tok.eos_token_id]

    def logprobs(prefix_ids: list[int], ending: str) -> torch.Tensor:
        """Log-likelihood of each token of the ending after the prefix."""
        ending_ids = tok(" " + ending, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prefix_ids + ending_ids], device=loaded.device)
        with torch.inference_mode():
            logits = model(input_ids=ids).logits[0, :-1].float()
        start = len(prefix_ids) - 1  # the logit at position i predicts token i + 1
        picked = torch.log_softmax(logits[start:start + len(ending_ids)], dim=-1)
        return picked.gather(1, ids[0, len(prefix_ids):].unsqueeze(1))[:, 0]

    right = right_normalised = 0
    margins = []
    for story in stories:
        context_ids = tok(story["context"])["input_ids"]
        mean, pmi = {}, {}
        for ending in ("right", "wrong"):
            given = logprobs(context_ids, story[ending])
            mean[ending] = float(given.mean())
            pmi[ending] = float(given.sum() - logprobs(no_story, story[ending]).sum())
        right += mean["right"] > mean["wrong"]
        right_normalised += pmi["right"] > pmi["wrong"]
        margins.append(mean["right"] - mean["wrong"])
    return {"accuracy": right / len(stories), "right": right, "n": len(stories),
            "mean_margin": sum(margins) / len(margins), "normalised_accuracy": right_normalised / len(stories)}


def evaluate(path: str, stories: list[dict], adapter: str | None = None) -> dict:
    from mlcore import runtime

    started = time.monotonic()
    ppl = runtime.perplexity(path, [full_text(s) for s in stories], adapter=adapter)
    result = {"perplexity": ppl, "cloze": cloze(path, stories, adapter)}
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def train(path: str, train_rows: list[dict], val_rows: list[dict], args, base_spec: str) -> dict:
    from mlcore import training

    work_dir = WORK_DIR / "story-lora"
    if work_dir.exists():  # train_lora resumes from a checkpoint it finds; a benchmark starts fresh
        shutil.rmtree(work_dir)

    def on_step(event):
        print(f"    step {event['step']}/{event['total_steps']}: loss {event['loss']:.3f}", flush=True)

    def on_epoch(event):
        print(f"    epoch {event['epoch']}: train loss {event['train_loss']:.3f}, validation perplexity "
              f"{event['val_perplexity']:.2f}, {event['seconds']:.0f} s", flush=True)

    params = {"epochs": args.epochs, "batch_size": args.batch_size, "block_size": args.block_size,
              "learning_rate": args.learning_rate, "lora_r": args.lora_r, "lora_alpha": 2 * args.lora_r,
              "lora_mlp": args.lora_mlp, "packing": args.pack, "seed": args.seed}
    callbacks = training.Callbacks(on_step=on_step, on_epoch=on_epoch, step_report_every=25)
    seconds, result = _common.timed(
        training.train_lora, base_path=path, train=[full_text(s) for s in train_rows],
        validation=[full_text(s) for s in val_rows], params=params, work_dir=work_dir, callbacks=callbacks,
        base_spec=base_spec)
    return {"params": params, "seconds": round(seconds, 1), "adapter": str(result.best_dir),
            "epochs_run": result.epochs_run, "validation": result.metrics, "history": result.history}


def trained_before(adapter: Path, args) -> dict:
    """What `train` reports, for an adapter that an earlier train_lora run left (read from its work folder)."""
    history = json.loads((adapter.parent / "history.json").read_text())
    best = min(history, key=lambda h: h["val_perplexity"])
    return {"params": {"lora_r": args.lora_r, "epochs": args.epochs, "learning_rate": args.learning_rate,
                       "lora_mlp": args.lora_mlp, "packing": args.pack, "reused": str(adapter)},
            "seconds": round(sum(h["seconds"] for h in history), 1), "adapter": str(adapter),
            "epochs_run": len(history), "validation": {"perplexity": best["val_perplexity"]}, "history": history}


def time_generation(path: str, prompt: str, args, *, adapter: str | None = None, stop=None) -> dict:
    """Best of `--runs` streamed generations: time to first piece, new tokens and tokens/s (prefill included)."""
    from mlcore import runtime

    list(runtime.generate(path, prompt, adapter=adapter, chat=False, max_new_tokens=4, seed=args.seed, **BALANCED))

    def once(seed):
        t0 = time.perf_counter()
        first, pieces = None, []
        for piece in runtime.generate(path, prompt, adapter=adapter, chat=False, max_new_tokens=args.max_new_tokens,
                                      seed=seed, stop=stop, **BALANCED):
            if first is None and piece:
                first = time.perf_counter()
            pieces.append(piece)
        end = time.perf_counter()
        text = "".join(pieces)
        tokens = runtime.count_tokens(path, [text])[0] if text else 0
        return {"ttft_s": (first or end) - t0, "total_s": end - t0, "tokens": tokens,
                "tokens_per_s": tokens / (end - t0) if end > t0 else 0.0, "text": text}

    runs, loads = [], []
    for i in range(max(1, args.runs)):
        run, load, _attempts = _common.measure_clean(lambda i=i: once(args.seed + i), tries=1)
        runs.append(run)
        loads.append(load)
    best = max(runs, key=lambda r: r["tokens_per_s"])
    return {"prompt_tokens": runtime.count_tokens(path, [prompt])[0],
            "ttft_s_best": round(min(r["ttft_s"] for r in runs), 3),
            "tokens_per_s_best": round(best["tokens_per_s"], 1), "tokens": best["tokens"], "sample": best["text"],
            "runs": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k != "text"}
                     for r in runs], "other_load": loads}


def quality_row(name: str, measured: dict) -> list[str]:
    return [name, f"{measured['perplexity']:.2f}", f"{100 * measured['cloze']['accuracy']:.1f}%",
            f"{100 * measured['cloze']['normalised_accuracy']:.1f}%"]


def main(argv=None) -> int:
    args = parse_args(argv)
    path_csv = args.data / FILENAME
    if _common.missing_data("story_lm", args.data, [FILENAME]):
        return 2
    started = time.monotonic()
    _common.setup_django()
    _common.set_threads(args.threads)
    from mlcore import specs

    spec = args.model or specs.lm_spec()
    path = specs.resolve(spec)

    train_rows, val_rows, eval_rows = split(read_stories(path_csv), args)
    if args.eval_limit:
        eval_rows = eval_rows[:args.eval_limit]
    data_info = {"train": len(train_rows), "validation": len(val_rows), "evaluation": len(eval_rows),
                 "split_seed": args.split_seed, "limit": args.limit}
    print(f"Model {spec}; stories: {data_info['train']} train, {data_info['validation']} validation, "
          f"{data_info['evaluation']} evaluation")

    print("Evaluating the base model ...", flush=True)
    before = evaluate(path, eval_rows)
    print(f"  perplexity {before['perplexity']:.2f}, Cloze {100 * before['cloze']['accuracy']:.1f}% "
          f"({before['seconds']:.0f} s)", flush=True)
    trained, after = None, None
    if args.adapter:
        trained = trained_before(args.adapter, args)
        print(f"Reusing the adapter {args.adapter} ({trained['epochs_run']} epoch(s), trained in "
              f"{trained['seconds']:.0f} s)", flush=True)
    elif not args.no_train:
        print(f"Training a LoRA (r={args.lora_r}, {args.epochs} epoch(s), lr {args.learning_rate}) on "
              f"{len(train_rows)} right-ending stories ...", flush=True)
        trained = train(path, train_rows, val_rows, args, spec)
        print(f"  trained in {trained['seconds']:.0f} s", flush=True)
    if trained:
        after = evaluate(path, eval_rows, adapter=trained["adapter"])
        print(f"  perplexity {after['perplexity']:.2f}, Cloze {100 * after['cloze']['accuracy']:.1f}% "
              f"({after['seconds']:.0f} s)", flush=True)

    print("Timing generation ...", flush=True)
    story_prompt = f"Genre: everyday life\n\n{eval_rows[0]['context']}"
    speed = {"story_base": time_generation(path, story_prompt, args),
             "npc_base": time_generation(path, NPC_PROMPT, args, stop=["\nPlayer:", "\n\n"])}
    if trained:
        speed["story_lora"] = time_generation(path, story_prompt, args, adapter=trained["adapter"])

    print()
    print(f"Evaluation: {len(eval_rows)} stories (seeded split {args.split_seed})")
    quality_rows = [quality_row("base", before)]
    if after:
        quality_rows.append(quality_row(f"+ story LoRA (r={args.lora_r}, {trained['epochs_run']} epoch(s), "
                                        f"{trained['seconds'] / 60:.1f} min)", after))
    print(_common.table(["model", "perplexity", "Story Cloze accuracy (goal metric)",
                         "Cloze, PMI-normalised (not the goal)"], quality_rows))
    print()
    names = {"story_base": "story continuation, base (as served)",
             "story_lora": "story continuation, with LoRA (transformers)", "npc_base": "NPC reply, base (as served)"}
    print(_common.table(["generation", "prompt tokens", "new tokens", "first token s", "tokens/s"], [
        [names[k], s["prompt_tokens"], s["tokens"], f"{s['ttft_s_best']:.3f}", f"{s['tokens_per_s_best']:.1f}"]
        for k, s in speed.items()]))
    goals = None
    if after:
        goals = {"perplexity_le_16": after["perplexity"] <= 16, "cloze_ge_75": after["cloze"]["accuracy"] >= 0.75}
        print(f"\nGoals: perplexity <= 16 {'met' if goals['perplexity_le_16'] else 'NOT met'}; "
              f"Cloze >= 75% {'met' if goals['cloze_ge_75'] else 'NOT met'}.")
    elapsed = time.monotonic() - started
    print(f"Total {elapsed / 60:.1f} min.")
    if math.isnan(before["perplexity"]):
        print("Note: the evaluation perplexity is not a number (no story had two tokens).")
    result = {"command": " ".join(sys.argv), "args": {k: str(v) for k, v in vars(args).items()}, "model": spec,
              "data": data_info, "machine": _common.machine(args.threads), "before": before, "after": after,
              "training": trained, "speed": speed, "goals": goals, "seconds": round(elapsed, 1)}
    path_out = _common.write_result("story_lm", result)
    print(f"Saved {path_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

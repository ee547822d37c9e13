"""NPC persona fidelity: does the reply the app's model writes stay closer to the speaker's own persona than to
someone else's?

Protocol:

1. Read the ConvAI2 / PersonaChat validation dialogues (`valid_self_original_no_cands.txt`, ParlAI format:
   "your persona:" lines, then "partner<TAB>reply" exchanges; numbering restarts at 1 for each dialogue).
2. A seeded sample of `--limit` dialogues; in each, one seeded exchange is the turn to answer, with the
   exchanges before it as history (at most `--history` of them).
3. The prompt is built the way the studio builds an NPC prompt (persona block, the lines so far, then
   "Player: <line>" and the speaker's name), and `mlcore.runtime.generate` writes the reply on the app's LM
   (chat=False, the "balanced" preset, seeded, stopped at the next "Player:" line), first line kept.
4. MiniLM (`package:minilm`, `mlcore.runtime.embed`) embeds the reply, the speaker's persona and the
   persona of another, randomly drawn (seeded) dialogue. A hit: cosine(reply, own) > cosine(reply, other).
   The rate of hits is reported with a 95% Wilson interval; 50% is chance. The same is done for the human
   gold reply of that turn as a reference point.

Run (about 1 s per dialogue on 2 quiet cores after the models load; results in var/bench/npc_persona-*.json):

    .venv/bin/python bench/npc_persona.py --data ../shared/data/convai2_personachat [--limit 200] [--seed 2026]

Quick check: `--limit 5 --max-new-tokens 24`. Exit code 2 means the data file is missing.
"""

import argparse
import math
import random
import re
import sys
import time
from pathlib import Path

import _common  # bench/ is sys.path[0] when this file runs as a script

FILENAME = "valid_self_original_no_cands.txt"
DEFAULT_DATA = _common.REPO.parent / "shared" / "data" / "convai2_personachat"
NAME = "Sam"
BALANCED = {"temperature": 0.8, "top_p": 0.95, "top_k": 50, "repetition_penalty": 1.1}
LINE_RE = re.compile(r"^(\d+) (.*)$")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"folder with {FILENAME}")
    parser.add_argument("--model", default="", help="LM spec or folder (default: the app's LM spec)")
    parser.add_argument("--limit", type=int, default=200, help="dialogues in the sample (default 200)")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the sample, turns, others and sampling")
    parser.add_argument("--history", type=int, default=4, help="earlier exchanges in the prompt (default 4)")
    parser.add_argument("--max-new-tokens", type=int, default=40, help="tokens per reply at most (default 40)")
    parser.add_argument("--threads", type=int, default=_common.DEFAULT_THREADS, help="torch threads (default 2)")
    return parser.parse_args(argv)


def read_dialogues(path: Path) -> list[dict]:
    """[{persona: [lines], turns: [(partner, reply)]}] in file order."""
    dialogues: list[dict] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = LINE_RE.match(raw)
        if not match:
            if raw.strip():
                raise SystemExit(f"npc_persona: {path} line {number} is not '<n> <text>': {raw[:60]!r}")
            continue
        index, text = int(match.group(1)), match.group(2)
        if index == 1 or not dialogues:
            dialogues.append({"persona": [], "turns": []})
        if text.startswith("your persona:"):
            dialogues[-1]["persona"].append(text.removeprefix("your persona:").strip())
        elif "\t" in text:
            partner, reply = text.split("\t", 1)
            dialogues[-1]["turns"].append((partner.strip(), reply.split("\t")[0].strip()))
    return [d for d in dialogues if d["persona"] and d["turns"]]


def persona_text(lines: list[str]) -> str:
    return " ".join(lines)


def prompt_for(dialogue: dict, turn: int, history: int) -> str:
    """The studio's NPC prompt shape: persona block, scene-less history, the player's line, then the name."""
    lines = [f"[Character: {NAME}]", f"Persona: {persona_text(dialogue['persona'])}", ""]
    for partner, reply in dialogue["turns"][max(0, turn - history):turn]:
        lines += [f"Player: {partner}", f"{NAME}: {reply}"]
    lines += [f"Player: {dialogue['turns'][turn][0]}", f"{NAME}:"]
    return "\n".join(lines)


def clean_reply(text: str) -> str:
    """The first non-empty line, without a repeated "Name:" (as the studio keeps a candidate reply)."""
    lines = [line.strip() for line in text.split("\nPlayer:")[0].splitlines() if line.strip()]
    reply = lines[0] if lines else ""
    if reply.lower().startswith(NAME.lower() + ":"):
        reply = reply[len(NAME) + 1:].strip()
    return reply


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def score(cases: list[dict], key: str, vectors: dict) -> dict:
    """Hit rate of `key` replies: closer (cosine) to the own persona than to the other one."""
    hits, margins, n = 0, [], 0
    for case in cases:
        text = case[key]
        if not text:
            continue
        reply = vectors[text]
        own = sum(a * b for a, b in zip(reply, vectors[case["own"]], strict=True))
        other = sum(a * b for a, b in zip(reply, vectors[case["other"]], strict=True))
        case[f"{key}_own"], case[f"{key}_other"] = round(own, 4), round(other, 4)
        hits += own > other
        margins.append(own - other)
        n += 1
    low, high = wilson(hits, n)
    return {"n": n, "hits": hits, "rate": hits / n if n else float("nan"), "ci95": [low, high],
            "mean_margin": sum(margins) / n if n else float("nan")}


def main(argv=None) -> int:
    args = parse_args(argv)
    source = args.data / FILENAME
    if _common.missing_data("npc_persona", args.data, [FILENAME]):
        return 2
    started = time.monotonic()
    _common.setup_django()
    _common.set_threads(args.threads)
    from mlcore import runtime, specs

    spec = args.model or specs.lm_spec()
    lm_path, encoder_path = specs.resolve(spec), specs.resolve("package:minilm")
    dialogues = read_dialogues(source)
    rng = random.Random(args.seed)
    chosen = rng.sample(range(len(dialogues)), min(args.limit, len(dialogues)))
    print(f"Model {spec}; {len(dialogues)} dialogues read, {len(chosen)} sampled (seed {args.seed})", flush=True)

    cases, gen_seconds, tokens = [], 0.0, 0
    list(runtime.generate(lm_path, "Player: hello\nSam:", chat=False, max_new_tokens=2, seed=0))  # load it first
    for number, index in enumerate(chosen, start=1):
        dialogue = dialogues[index]
        turn = rng.randrange(len(dialogue["turns"]))
        other_index = rng.choice([i for i in range(len(dialogues))
                                  if persona_text(dialogues[i]["persona"]) != persona_text(dialogue["persona"])])
        t0 = time.perf_counter()
        raw = "".join(runtime.generate(lm_path, prompt_for(dialogue, turn, args.history), chat=False,
                                       max_new_tokens=args.max_new_tokens, seed=args.seed + number,
                                       stop=["\nPlayer:", "\n\n"], **BALANCED))
        gen_seconds += time.perf_counter() - t0
        tokens += runtime.count_tokens(lm_path, [raw])[0] if raw else 0
        cases.append({"dialogue": index, "turn": turn, "other": persona_text(dialogues[other_index]["persona"]),
                      "own": persona_text(dialogue["persona"]), "player": dialogue["turns"][turn][0],
                      "reply": clean_reply(raw), "gold": dialogue["turns"][turn][1]})
        if number % 20 == 0:
            print(f"  {number}/{len(chosen)} replies", flush=True)

    texts = sorted({t for c in cases for t in (c["own"], c["other"], c["reply"], c["gold"]) if t})
    vectors = dict(zip(texts, runtime.embed(encoder_path, texts), strict=True))
    generated, gold = score(cases, "reply", vectors), score(cases, "gold", vectors)
    empty = sum(1 for c in cases if not c["reply"])

    def row(name, r):
        return [name, r["n"], r["hits"], f"{100 * r['rate']:.1f}%",
                f"{100 * r['ci95'][0]:.0f}–{100 * r['ci95'][1]:.0f}%", f"{r['mean_margin']:+.3f}"]

    print()
    print(_common.table(["replies", "scored", "closer to own persona", "rate", "95% interval", "mean margin"],
                        [row(f"generated ({spec})", generated), row("human (gold) replies", gold)]))
    print(f"\n{empty} empty generated replies (not scored); generation {tokens} tokens in {gen_seconds:.1f} s "
          f"({tokens / gen_seconds if gen_seconds else 0:.1f} tokens/s). Chance is 50%.")
    for case in cases[:3]:
        print(f"  e.g. Player: {case['player']}\n       {NAME}: {case['reply']}")
    elapsed = time.monotonic() - started
    print(f"Total {elapsed / 60:.1f} min.")
    path = _common.write_result("npc_persona", {
        "command": " ".join(sys.argv), "args": {k: str(v) for k, v in vars(args).items()}, "model": spec,
        "machine": _common.machine(args.threads), "generated": generated, "gold": gold, "empty_replies": empty,
        "generation": {"tokens": tokens, "seconds": round(gen_seconds, 1)}, "cases": cases,
        "seconds": round(elapsed, 1),
    })
    print(f"Saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

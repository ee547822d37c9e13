"""Loading and running models (with mlcore.training and mlcore.onnx_serving, the only modules importing torch).

Models load lazily in the process that uses them (a worker child, never a parent that forks)
and stay in an LRU cache bounded by MLCORE_CACHE_MB. Inference is batched by length with
dynamic padding, so short headlines do not pay for long essays.
"""

import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch
from django.conf import settings

log = logging.getLogger(__name__)

SIDECAR = "parlance.json"  # what mlcore knows about an artifact beyond the HF config


def select_device(preference: str | None = None) -> torch.device:
    """cuda > mps > cpu, unless MLCORE_DEVICE names one."""
    preference = (preference or settings.MLCORE_DEVICE or "auto").lower()
    if preference != "auto":
        return torch.device(preference)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _threads_setting() -> int:
    return int(os.environ.get("MLCORE_THREADS", "0") or 0)


def _configure_threads() -> None:
    if (threads := _threads_setting()) > 0:
        torch.set_num_threads(threads)


_configure_threads()
_DEFAULT_THREADS = torch.get_num_threads()  # MLCORE_THREADS, or torch's default: the physical cores


def threads_share(*, processes: int) -> int:
    """Set this process's model threads (torch; ONNX Runtime and llama.cpp read it when they load a model) to
    its share of the cores when `processes` processes run models side by side; MLCORE_THREADS, when set, is
    kept as it is. Returns the threads now set."""
    if _threads_setting() <= 0:
        torch.set_num_threads(max(1, _DEFAULT_THREADS // max(processes, 1)))
    return torch.get_num_threads()


def read_sidecar(path: str | Path) -> dict:
    sidecar = Path(path) / SIDECAR
    return json.loads(sidecar.read_text()) if sidecar.exists() else {}


def write_sidecar(path: str | Path, data: dict) -> None:
    (Path(path) / SIDECAR).write_text(json.dumps(data, indent=2))


@dataclass
class Loaded:
    model: object
    tokenizer: object
    kind: str
    device: torch.device
    nbytes: int
    meta: dict = field(default_factory=dict)


class ModelCache:
    """Least-recently-used models, evicted when their parameters exceed `max_bytes`."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, Loaded] = OrderedDict()
        self._lock = threading.RLock()

    def get(self, key: tuple, loader) -> Loaded:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            loaded = loader()
            self._items[key] = loaded
            while len(self._items) > 1 and sum(i.nbytes for i in self._items.values()) > self.max_bytes:
                evicted_key, _ = self._items.popitem(last=False)
                log.info("model cache: evicted %s", evicted_key)
            return loaded

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def keys(self) -> list[tuple]:
        with self._lock:
            return list(self._items)


cache = ModelCache(max_bytes=int(os.environ.get("MLCORE_CACHE_MB", "4096")) * 1024 * 1024)


def _param_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


# What the model serving each kind returns, by name: `embed` and friends read these outputs, and the ONNX graphs
# (mlcore.onnx_serving) export them under the same names. A hidden state has one vector a token.
KIND_OUTPUTS = {"classifier": ("logits",), "regressor": ("logits",), "embedder": ("last_hidden_state",),
                "middle_embedder": ("last_hidden_state", "middle_hidden_state")}
# The middle-layer embedder is the embedder with one more output: it runs at the embedder's precision.
PRECISION_KIND = {"middle_embedder": "embedder"}


def per_token(output: str) -> bool:
    return output.endswith("hidden_state")


class WithMiddleLayer(torch.nn.Module):
    """An encoder that returns its middle layer's hidden states beside its last ones, from one pass.

    The middle layer keeps more of the surface of the writing than the last one, which
    sentence-embedding training tunes for meaning: essay scores read both (docs/benchmarks.md).
    """

    def __init__(self, model):
        super().__init__()
        self.model, self.config = model, model.config

    def forward(self, **encoded):
        out = self.model(**encoded, output_hidden_states=True)
        # hidden_states[0] is the embedding layer's output, [i] layer i's: the middle layer, 3 of MiniLM-L6's 6.
        middle = out.hidden_states[len(out.hidden_states) // 2]
        return SimpleNamespace(last_hidden_state=out.last_hidden_state, middle_hidden_state=middle)


class DecoderMiddle(torch.nn.Module):
    """A decoder LM cut after its middle layer, for reading a text rather than continuing it.

    A causal LM's middle layer carries how a text is written (its vocabulary, syntax, slips) as well as what
    it says; mean-pooled, it helps the essay scorer beside the encoder's embeddings (docs/benchmarks.md). Where
    the base model keeps its blocks in `layers` with a final `norm` (Llama, Mistral, Qwen, SmolLM2 ...), the
    blocks after the middle are dropped, so a pass costs half the model's; other architectures run whole and
    return the middle entry of their hidden states, the same vectors.
    """

    def __init__(self, base):
        super().__init__()
        self.depth = base.config.num_hidden_layers // 2
        layers = getattr(base, "layers", None)
        self.cut = isinstance(layers, torch.nn.ModuleList) and isinstance(getattr(base, "norm", None),
                                                                          torch.nn.Module)
        if self.cut:
            base.layers = layers[: self.depth]
            base.norm = torch.nn.Identity()  # hidden_states[depth] is the block's output before any norm
            base.config.num_hidden_layers = self.depth
            if getattr(base.config, "layer_types", None):
                base.config.layer_types = base.config.layer_types[: self.depth]
        self.base, self.config = base, base.config

    def forward(self, input_ids, attention_mask):
        out = self.base(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                        output_hidden_states=not self.cut)
        # hidden_states[0] is the embeddings' output, [i] block i's.
        return SimpleNamespace(middle_hidden_state=out.last_hidden_state if self.cut
                               else out.hidden_states[self.depth])


def load_encoder_model(path: str, kind: str):
    """The transformers model serving `kind` ("embedder", "middle_embedder", "classifier", "regressor")."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    if kind == "embedder":
        return AutoModel.from_pretrained(path)
    if kind == "middle_embedder":
        return WithMiddleLayer(AutoModel.from_pretrained(path))
    return AutoModelForSequenceClassification.from_pretrained(path)


def _load_encoder(path: str, kind: str, device: torch.device) -> Loaded:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    meta = read_sidecar(path)
    int8 = device.type == "cpu" and PRECISION_KIND.get(kind, kind) in settings.MLCORE_CPU_INT8
    if device.type == "cpu" and settings.MLCORE_ENCODER_BACKEND == "onnx" and Path(path).is_dir():
        from mlcore import onnx_serving

        try:
            model = onnx_serving.load(path, kind, int8=int8)
        except Exception:  # an architecture the exporter cannot trace, a read-only MLCORE_HOME: torch still serves
            log.exception("onnx: cannot serve %s (%s) through ONNX Runtime; serving it with torch", path, kind)
        else:
            meta = {**meta, "backend": "onnx", **({"int8": True} if int8 else {})}
            return Loaded(model, tokenizer, kind, device, model.file.stat().st_size, meta)
    model = load_encoder_model(path, kind)
    model.to(device).eval()
    nbytes = _param_bytes(model)
    if int8:
        # Dynamic int8 Linear layers: 2.2x the sentences/s of fp32 on CPU at the same PhraseBank accuracy
        # (docs/benchmarks.md). Packed int8 weights are not parameters any more, so the size is taken before.
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        meta = {**meta, "int8": True}
    return Loaded(model, tokenizer, kind, device, nbytes, meta)


def _load_causal_lm(path: str, adapter: str | None, device: torch.device) -> Loaded:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
        model = model.merge_and_unload()
    model.to(device).eval()
    return Loaded(model, tokenizer, "causal_lm", device, _param_bytes(model), read_sidecar(adapter or path))


def _load_decoder_middle(path: str, device: torch.device) -> Loaded:
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)  # its own: padding on the right for the mean, whatever the LM's
    tokenizer.padding_side = "right"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = DecoderMiddle(AutoModel.from_pretrained(path, dtype=dtype))
    model.to(device).eval()
    return Loaded(model, tokenizer, "decoder_middle", device, _param_bytes(model), {"depth": model.depth})


def encoder(path: str, kind: str) -> Loaded:
    device = select_device()
    return cache.get(("encoder", path, kind, str(device)), lambda: _load_encoder(path, kind, device))


def causal_lm(path: str, adapter: str | None = None) -> Loaded:
    device = select_device()
    return cache.get(("causal_lm", path, adapter, str(device)), lambda: _load_causal_lm(path, adapter, device))


def _length_batches(texts: list[str], batch_size: int) -> Iterator[list[int]]:
    """Indices of `texts` in batches of similar length (longest first), for dynamic padding."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _encode(loaded: Loaded, batch: list[str], max_length: int) -> dict:
    # Never past the model's own positions: a longer input would index off the position embeddings.
    max_length = min(max_length, getattr(loaded.model.config, "max_position_embeddings", None) or max_length)
    enc = loaded.tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {k: v.to(loaded.device) for k, v in enc.items()}


def classify(path: str, texts: list[str], *, batch_size: int = 64, max_length: int = 256) -> list[dict]:
    """Label and per-label probabilities for each text, in input order."""
    loaded = encoder(path, "classifier")
    labels = loaded.meta.get("labels") or [
        loaded.model.config.id2label[i] for i in range(loaded.model.config.num_labels)
    ]
    out: list[dict | None] = [None] * len(texts)
    with torch.inference_mode():
        for idx in _length_batches(texts, batch_size):
            logits = loaded.model(**_encode(loaded, [texts[i] for i in idx], max_length)).logits
            probs = torch.softmax(logits.float(), dim=-1).cpu().tolist()
            for i, row in zip(idx, probs, strict=True):
                best = max(range(len(row)), key=row.__getitem__)
                out[i] = {"label": labels[best], "scores": {labels[j]: row[j] for j in range(len(row))}}
    return out


def regress(path: str, texts: list[str], *, batch_size: int = 32, max_length: int = 512) -> list[float]:
    """One number per text, de-standardised with the mean and spread the model was trained on."""
    loaded = encoder(path, "regressor")
    mean = float(loaded.meta.get("target_mean", 0.0))
    std = float(loaded.meta.get("target_std", 1.0))
    out = [0.0] * len(texts)
    with torch.inference_mode():
        for idx in _length_batches(texts, batch_size):
            preds = loaded.model(**_encode(loaded, [texts[i] for i in idx], max_length)).logits[:, 0]
            for i, value in zip(idx, preds.float().cpu().tolist(), strict=True):
                out[i] = value * std + mean
    return out


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def embed(path: str, texts: list[str], *, batch_size: int = 64, max_length: int = 256) -> list[list[float]]:
    """L2-normalised mean-pooled sentence embeddings, in input order."""
    (vectors,) = _pooled(encoder(path, "embedder"), texts, batch_size, max_length)
    return vectors


def embed_with_middle(path: str, texts: list[str], *, batch_size: int = 64,
                      max_length: int = 256) -> tuple[list[list[float]], list[list[float]]]:
    """`embed`'s vectors and, from the same pass, the middle layer's (mean-pooled, L2-normalised), in input order."""
    last, middle = _pooled(encoder(path, "middle_embedder"), texts, batch_size, max_length)
    return last, middle


def _pooled(loaded: Loaded, texts: list[str], batch_size: int, max_length: int) -> list[list[list[float]]]:
    """Each of the loaded embedder's outputs (KIND_OUTPUTS) mean-pooled and L2-normalised, in input order."""
    outputs = KIND_OUTPUTS[loaded.kind]
    out: list[list] = [[None] * len(texts) for _ in outputs]
    with torch.inference_mode():
        for idx in _length_batches(texts, batch_size):
            enc = _encode(loaded, [texts[i] for i in idx], max_length)
            result = loaded.model(**enc)
            for slot, name in zip(out, outputs, strict=True):
                pooled = mean_pool(getattr(result, name), enc["attention_mask"]).float()
                for i, vector in zip(idx, torch.nn.functional.normalize(pooled, dim=-1).cpu().tolist(), strict=True):
                    slot[i] = vector
    return out


def decoder_middle(path: str, texts: list[str], *, batch_size: int = 8, max_length: int = 384) -> list[list[float]]:
    """The causal LM's middle layer mean-pooled over each text's first `max_length` tokens (unit length), in input
    order. Right padding and causal attention leave a text's own states as they would be alone."""
    device = select_device()
    loaded = cache.get(("decoder_middle", path, str(device)), lambda: _load_decoder_middle(path, device))
    out: list = [None] * len(texts)
    with torch.inference_mode():
        for idx in _length_batches(texts, batch_size):
            enc = _encode(loaded, [texts[i] for i in idx], max_length)
            states = loaded.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
            pooled = mean_pool(states.middle_hidden_state, enc["attention_mask"]).float()
            for i, vector in zip(idx, torch.nn.functional.normalize(pooled, dim=-1).cpu().tolist(), strict=True):
                out[i] = vector
    return out


def perplexity(path: str, texts: list[str], *, adapter: str | None = None, max_length: int = 512) -> float:
    """exp of the mean next-token loss over all `texts` (each scored on its own, truncated to max_length)."""
    loaded = causal_lm(path, adapter)
    total, count = 0.0, 0
    with torch.inference_mode():
        for text in texts:
            enc = loaded.tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length)
            ids = enc["input_ids"].to(loaded.device)
            if ids.shape[1] < 2:
                continue
            loss = loaded.model(input_ids=ids, labels=ids).loss.float().item()
            total += loss * (ids.shape[1] - 1)
            count += ids.shape[1] - 1
    return float("nan") if count == 0 else float(torch.tensor(total / count).exp())


def continuation_logprobs(path: str, pairs: list[tuple[str, str]], *, batch_size: int = 4,
                          max_length: int = 1024) -> list[float]:
    """The mean log-probability per token of each continuation after its context, in input order.

    Context and continuation are tokenized apart (a continuation usually starts with a space). A pair longer
    than `max_length` tokens loses the start of its context; an empty continuation scores 0. Batches are
    padded on the left, so every continuation ends the sequence and only its positions need the LM head.
    """
    with _score_lock:  # one scoring at a time per process: two at once would share the cores, each the slower
        return _continuation_logprobs(causal_lm(path), pairs, batch_size=batch_size, max_length=max_length)


_score_lock = threading.Lock()


def _continuation_logprobs(loaded: Loaded, pairs: list[tuple[str, str]], *, batch_size: int,
                           max_length: int) -> list[float]:
    tok = loaded.tokenizer
    encoded = []
    for context, continuation in pairs:
        cont = list(tok(continuation, add_special_tokens=False)["input_ids"])[:max_length - 1]
        ctx = list(tok(context)["input_ids"])[-(max_length - len(cont)):]
        encoded.append((ctx, cont))
    out = [0.0] * len(encoded)
    order = [i for i in sorted(range(len(encoded)), key=lambda i: -sum(map(len, encoded[i]))) if encoded[i][1]]
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            width = max(len(encoded[i][0]) + len(encoded[i][1]) for i in batch)
            keep = max(len(encoded[i][1]) for i in batch) + 1
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                sequence = encoded[i][0] + encoded[i][1]
                ids[row, width - len(sequence):] = torch.tensor(sequence)
                mask[row, width - len(sequence):] = 1
            positions = (mask.cumsum(1) - 1).clamp(min=0)
            logits = loaded.model(input_ids=ids.to(loaded.device), attention_mask=mask.to(loaded.device),
                                  position_ids=positions.to(loaded.device), logits_to_keep=keep).logits
            logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
            for row, i in enumerate(batch):
                cont = encoded[i][1]
                # logits at position p predict token p + 1: the continuation's are the `keep - 1` before the last.
                rows = logprobs[row, keep - 1 - len(cont): keep - 1]
                out[i] = float(rows.gather(1, torch.tensor(cont)[:, None]).mean())
    return out


_generate_lock = threading.Lock()


def generate(
    path: str,
    prompt: str,
    *,
    adapter: str | None = None,
    system: str | None = None,
    chat: bool = True,
    max_new_tokens: int = 200,
    temperature: float = 0.8,
    top_p: float = 0.95,
    top_k: int = 50,
    repetition_penalty: float = 1.1,
    seed: int | None = None,
    stop: list[str] | None = None,
) -> Iterator[str]:
    """Text pieces as the model produces them (through llama.cpp on CPU where it can serve the model)."""
    from mlcore import llamacpp

    gguf = llamacpp.serves(path, adapter=adapter, device_type=select_device().type)
    if gguf is not None:
        ids = llamacpp.prompt_ids(path, prompt, system=system, chat=chat)
        pieces = llamacpp.generate(gguf, ids, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                   top_k=top_k, repetition_penalty=repetition_penalty, seed=seed)
        try:
            yield from _cut_at_stop(pieces, stop or [])
        finally:
            pieces.close()
        return
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    loaded = causal_lm(path, adapter)
    tok = loaded.tokenizer
    if chat and getattr(tok, "chat_template", None):
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    else:
        inputs = tok((system + "\n\n" if system else "") + prompt, return_tensors="pt")
    inputs = {k: v.to(loaded.device) for k, v in inputs.items()}
    streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True, timeout=300)
    sample = temperature > 0
    kwargs = dict(
        **inputs,
        streamer=streamer,
        max_new_tokens=max_new_tokens,
        do_sample=sample,
        repetition_penalty=repetition_penalty,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
    )
    if sample:
        kwargs.update(temperature=temperature, top_p=top_p, top_k=top_k)
    # Stop strings are matched on the decoded text below (any tokenizer); when one is found, or
    # the caller stops reading (a closed stream, a cancelled job), the model stops at the next token.
    halt = threading.Event()

    class Halt(StoppingCriteria):
        def __call__(self, input_ids, scores, **kw):
            return halt.is_set()

    kwargs["stopping_criteria"] = StoppingCriteriaList([Halt()])
    errors: list[BaseException] = []

    def run():
        try:
            with torch.inference_mode():
                loaded.model.generate(**kwargs)
        except BaseException as exc:  # surfaced to the caller below
            errors.append(exc)
            streamer.end()

    # One generation at a time per process: the seed is global torch state.
    with _generate_lock:
        if seed is not None:
            torch.manual_seed(seed)
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        exhausted = []

        def pieces():
            yield from streamer
            exhausted.append(True)

        try:
            yield from _cut_at_stop(pieces(), stop or [])
        finally:
            halt.set()
            if not exhausted:
                for _ in streamer:  # drain what was produced before the halt so the thread can end
                    pass
            thread.join()
    if errors:
        raise errors[0]


def _cut_at_stop(pieces, stop: list[str]) -> Iterator[str]:
    """Pass pieces through until a stop string appears; hold back enough to see one split across pieces."""
    hold = max((len(s) for s in stop), default=1) - 1
    buffer = ""
    for piece in pieces:
        buffer += piece
        hits = [buffer.find(s) for s in stop if s in buffer]
        if hits:
            if min(hits) > 0:
                yield buffer[: min(hits)]
            return
        if len(buffer) > hold:
            yield buffer[: len(buffer) - hold]
            buffer = buffer[len(buffer) - hold :]
    if buffer:
        yield buffer


_tokenizers: dict[str, object] = {}
_tokenizers_lock = threading.Lock()


def tokenizer_for(path: str):
    """A model's tokenizer alone (counting tokens should not load the weights)."""
    with _tokenizers_lock:
        if path not in _tokenizers:
            from transformers import AutoTokenizer

            _tokenizers[path] = AutoTokenizer.from_pretrained(path)
        return _tokenizers[path]


def count_tokens(path: str, texts: list[str]) -> list[int]:
    """How many tokens the model at `path` reads for each text (no special tokens), in input order."""
    if not texts:
        return []
    encoded = tokenizer_for(path)(list(texts), add_special_tokens=False)["input_ids"]
    return [len(ids) for ids in encoded]


DEFAULT_CONTEXT_WINDOW = 2048


def context_window(path: str) -> int:
    """The longest input the model at `path` takes (max_position_embeddings), or a safe default."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError):
        return DEFAULT_CONTEXT_WINDOW
    value = getattr(config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else DEFAULT_CONTEXT_WINDOW

"""Serving a causal LM's GGUF file through llama.cpp on CPU (llama-cpp-python, an optional install).

transformers stays the path for training, LoRA adapters and GPUs. On CPU, llama.cpp runs the very
GGUF that the packaged model is converted from 5-6x faster than transformers runs the dequantised
copy (docs/benchmarks.md), so `mlcore.runtime.generate` hands plain generation to it when
`MLCORE_LM_BACKEND` allows, llama-cpp-python is installed and the model has a known GGUF source.

The prompt is built with the Hugging Face tokenizer of the converted directory (same vocabulary,
same chat template), so both backends see the same token ids.
"""

import atexit
import importlib.util
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from mlcore import specs

log = logging.getLogger(__name__)


class BackendUnavailable(RuntimeError):
    """MLCORE_LM_BACKEND=llamacpp was asked for, but llama.cpp cannot serve this model here."""


def installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def gguf_source(path: str | Path) -> Path | None:
    """The GGUF file a converted model directory came from, when there is one on disk."""
    from mlcore.runtime import read_sidecar

    recorded = read_sidecar(path).get("gguf")
    if recorded and Path(recorded).is_file():
        return Path(recorded)
    resolved = Path(path).resolve()
    for packaged in specs.PACKAGED.values():
        if packaged.gguf_file and packaged.converted_dir.resolve() == resolved:
            try:
                gguf = packaged.package_dir() / packaged.gguf_file
            except specs.ModelNotReady:
                return None
            return gguf if gguf.is_file() else None
    return None


def serves(path: str, *, adapter: str | None, device_type: str) -> Path | None:
    """The GGUF to serve `path` from through llama.cpp, or None to use transformers."""
    backend = settings.MLCORE_LM_BACKEND
    if backend == "transformers":
        return None
    usable = adapter is None and device_type == "cpu" and installed()
    gguf = gguf_source(path) if usable else None
    if backend == "llamacpp" and gguf is None:
        why = ("llama-cpp-python is not installed" if not installed() else
               "a LoRA adapter is applied" if adapter else
               f"the device is {device_type}" if device_type != "cpu" else f"{path} has no GGUF source")
        raise BackendUnavailable(f"MLCORE_LM_BACKEND=llamacpp, but llama.cpp cannot serve this model: {why}.")
    return gguf


@dataclass
class _Served:
    llm: object
    lock: threading.Lock


_models: dict[str, _Served] = {}
_models_lock = threading.Lock()


@atexit.register
def _close_all() -> None:
    # Freed by the garbage collector at interpreter exit, llama.cpp's finalizer finds its module half torn
    # down and prints a traceback; closing the models first lets the process end quietly.
    with _models_lock:
        for served in _models.values():
            served.llm.close()
        _models.clear()


def _served(gguf: Path) -> _Served:
    key = str(gguf)
    with _models_lock:
        if key not in _models:
            import torch
            from llama_cpp import Llama

            threads = torch.get_num_threads()  # MLCORE_THREADS, or torch's default: the physical cores
            llm = Llama(model_path=key, n_ctx=0, n_threads=threads, n_threads_batch=threads, verbose=False)
            _models[key] = _Served(llm, threading.Lock())
            log.info("llama.cpp: loaded %s with %d threads", gguf.name, threads)
        return _models[key]


def generate(
    gguf: Path,
    prompt_ids: list[int],
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    top_k: int,
    repetition_penalty: float,
    seed: int | None,
) -> Iterator[str]:
    """Text pieces from llama.cpp for the given prompt token ids; stops when the caller stops reading."""
    served = _served(gguf)
    with served.lock:  # a llama.cpp context serves one sequence at a time
        served.llm.reset()
        sample = temperature > 0
        stream = served.llm.create_completion(
            prompt=prompt_ids, max_tokens=max_new_tokens, stream=True,
            temperature=temperature if sample else 0.0, top_p=top_p if sample else 1.0,
            top_k=top_k if sample else 1, repeat_penalty=repetition_penalty,
            **({"seed": seed} if seed is not None else {}),
        )
        try:
            for chunk in stream:
                text = chunk["choices"][0]["text"]
                if text:
                    yield text
        finally:
            stream.close()


def prompt_ids(path: str, prompt: str, *, system: str | None, chat: bool) -> list[int]:
    """The prompt's token ids as the transformers path builds them (chat template when the model has one)."""
    from mlcore.runtime import tokenizer_for

    tok = tokenizer_for(path)
    if chat and getattr(tok, "chat_template", None):
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        return list(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False))
    return list(tok((system + "\n\n" if system else "") + prompt)["input_ids"])

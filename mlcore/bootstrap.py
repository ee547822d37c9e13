"""Prepare the packaged base models offline: check the encoder, convert the GGUF LM once."""

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from mlcore.specs import PACKAGED, ModelNotReady


def _convert_gguf(name: str, say: Callable[[str], None]) -> Path:
    import torch  # noqa: F401  (fails early with a clear ImportError if torch is missing)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    packaged = PACKAGED[name]
    target = packaged.converted_dir
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        say(f"{packaged.description}: ready at {target}")
        return target
    source = packaged.package_dir()
    gguf = source / packaged.gguf_file
    if not gguf.exists():
        raise ModelNotReady(f"{gguf} is missing: reinstall {packaged.package} (`make install`).")
    say(f"{packaged.description}: converting {gguf.name} to safetensors (once; about 15 s)...")
    started = time.monotonic()
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=packaged.gguf_file)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=packaged.gguf_file)
    # transformers attaches a GGUF quantizer although the weights are now dense fp32; without
    # removing it the model can be neither saved nor trained.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    partial = target.with_name(target.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)
    say(f"{packaged.description}: converted in {time.monotonic() - started:.1f} s to {target}")
    return target


def _check_encoder(name: str, say: Callable[[str], None]) -> Path:
    packaged = PACKAGED[name]
    path = packaged.package_dir() / packaged.subdir
    if not (path / "config.json").exists():
        raise ModelNotReady(f"{path} has no config.json: reinstall {packaged.package} (`make install`).")
    say(f"{packaged.description}: ready at {path}")
    return path


def packaged_models_prepare(say: Callable[[str], None] = print) -> dict[str, Path]:
    """Make every packaged model loadable from disk; idempotent and fast when already done."""
    return {
        name: (_convert_gguf(name, say) if packaged.gguf_file else _check_encoder(name, say))
        for name, packaged in PACKAGED.items()
    }

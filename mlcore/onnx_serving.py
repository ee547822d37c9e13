"""Serving encoders on CPU through ONNX Runtime (MLCORE_ENCODER_BACKEND=onnx).

torch stays the path for training, GPUs and any other device. On CPU, a classifier, regressor or
embedder is exported once from its transformers model (the TorchScript exporter, which needs no
network and no onnxscript) and run by an ONNX Runtime session, int8 where MLCORE_CPU_INT8 says so
(`onnxruntime.quantization.quantize_dynamic`: int8 weights of the MatMuls, as torch's dynamic int8
does for Linear layers). The session is called like the model it came from, so `mlcore.runtime`
batches, pads and post-processes exactly as it does for torch.

Exports are cached under MLCORE_HOME/onnx/<model dir name>-<hash of its path>/, one graph per kind
(a classifier's logits and an embedder's hidden states are different graphs) and precision, with a
fingerprint of the model's weight files beside them. An export whose model files changed, or that
ONNX Runtime cannot load, is made again; several processes may export at once (each writes its own
temporary file and renames it into place).
"""

import hashlib
import json
import logging
import os
import warnings
from pathlib import Path
from types import SimpleNamespace

import torch
from django.conf import settings

from mlcore.runtime import KIND_OUTPUTS, load_encoder_model, per_token

log = logging.getLogger(__name__)

OPSET = 17
WEIGHT_SUFFIXES = (".safetensors", ".bin")


class OnnxEncoder:
    """An ONNX Runtime session called like the transformers model it was exported from."""

    def __init__(self, session, config, outputs: tuple[str, ...], file: Path):
        self.session = session
        self.config = config
        self.outputs = outputs
        self.file = file
        self.input_names = [i.name for i in session.get_inputs()]

    def __call__(self, **encoded):
        feeds = {name: encoded[name].cpu().numpy() for name in self.input_names}
        values = self.session.run(list(self.outputs), feeds)
        return SimpleNamespace(**{name: torch.from_numpy(v) for name, v in zip(self.outputs, values, strict=True)})


def export_dir(path: str | Path) -> Path:
    resolved = Path(path).resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    return Path(settings.MLCORE_HOME) / "onnx" / f"{resolved.name}-{digest}"


def source_fingerprint(path: str | Path) -> dict:
    """Size and modification time of the files the graph is made from (config and weights)."""
    files = [p for p in Path(path).iterdir() if p.name == "config.json" or p.name.endswith(WEIGHT_SUFFIXES)]
    return {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(files)}


def load(path: str, kind: str, *, int8: bool) -> OnnxEncoder:
    """The session serving the model at `path` as `kind`, exported (and quantised) first where needed."""
    from transformers import AutoConfig

    fp32 = _fresh_export(path, kind)
    file = _fresh_int8(fp32) if int8 else fp32
    try:
        session = _session(file)
    except Exception as exc:  # a truncated or corrupt file: ONNX Runtime raises its own error types
        log.warning("onnx: %s does not load (%s); exporting %s again", file, exc, path)
        fp32 = _fresh_export(path, kind, force=True)
        file = _fresh_int8(fp32, force=True) if int8 else fp32
        session = _session(file)
    return OnnxEncoder(session, AutoConfig.from_pretrained(path), KIND_OUTPUTS[kind], file)


def _session(file: Path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # MLCORE_THREADS, as for torch
    options.inter_op_num_threads = 1
    # Idle threads sleep instead of spinning: on 2 cores shared with web processes and tests, spinning
    # halved int8 throughput while another process ran (680 vs 1,279 sentences/s) and gained 1-9% otherwise.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])


def _fresh_export(path: str, kind: str, *, force: bool = False) -> Path:
    target = export_dir(path) / f"{kind}.onnx"
    manifest = target.with_suffix(".json")
    fingerprint = source_fingerprint(path)
    if not force and target.exists() and manifest.exists():
        try:
            if json.loads(manifest.read_text()).get("source") == fingerprint:
                return target
        except ValueError:
            pass
    _export(path, kind, target)
    _write_atomically(manifest, json.dumps({"model": str(Path(path).resolve()), "kind": kind, "source": fingerprint,
                                            "opset": OPSET, "torch": torch.__version__}, indent=2).encode())
    return target


def _fresh_int8(fp32: Path, *, force: bool = False) -> Path:
    target = fp32.with_name(fp32.stem + ".int8.onnx")
    if force or not target.exists() or target.stat().st_mtime_ns < fp32.stat().st_mtime_ns:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        log.info("onnx: quantising %s to int8", fp32)
        tmp = _temporary(target)
        quiet = _QuantizerChatter()
        logging.getLogger().addFilter(quiet)
        try:
            # MatMuls only: the encoder's Linear layers (the work), not the embedding lookups.
            quantize_dynamic(fp32, tmp, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
            os.replace(tmp, target)
        finally:
            logging.getLogger().removeFilter(quiet)
            tmp.unlink(missing_ok=True)
    return target


class _QuantizerChatter(logging.Filter):
    """The quantiser logs a line per tensor (and advice for image models) on the root logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return f"{os.sep}onnxruntime{os.sep}quantization{os.sep}" not in record.pathname


class _ByName(torch.nn.Module):
    """Positional inputs in a fixed order, so the graph's input names are the tokenizer's own."""

    def __init__(self, model, names: list[str], outputs: tuple[str, ...]):
        super().__init__()
        self.model, self.names, self.outputs = model, names, outputs

    def forward(self, *tensors):
        result = self.model(**dict(zip(self.names, tensors, strict=True)))
        return tuple(getattr(result, name) for name in self.outputs)


def _export(path: str, kind: str, target: Path) -> None:
    from transformers import AutoTokenizer

    log.info("onnx: exporting %s (%s) to %s", path, kind, target)
    model = load_encoder_model(path, kind).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    # Traced on a padded batch, so the attention mask's path through the model is in the graph.
    sample = tokenizer(["a short one", "a longer sentence than the first one"], padding=True, return_tensors="pt")
    names, outputs = list(sample.keys()), KIND_OUTPUTS[kind]
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    for output in outputs:
        axes[output] = {0: "batch", 1: "sequence"} if per_token(output) else {0: "batch"}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(target)
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter is deprecated in favour of torch.export's, which needs onnxscript and
            # tracing-time checks on shapes are expected here: both warnings are noise for a fixed encoder.
            warnings.simplefilter("ignore")
            torch.onnx.export(_ByName(model, names, outputs), tuple(sample[n] for n in names), str(tmp),
                              input_names=names, output_names=list(outputs), dynamic_axes=axes, opset_version=OPSET,
                              dynamo=False)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _temporary(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


def _write_atomically(target: Path, data: bytes) -> None:
    tmp = _temporary(target)
    tmp.write_bytes(data)
    os.replace(tmp, target)

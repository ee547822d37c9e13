"""Fine-tuning loops: full fine-tune of an encoder (classifier or regressor).

The loop reports through callbacks (progress rows are written by the caller), checkpoints at
every epoch so a killed worker resumes, keeps the best epoch by validation score, and stops
early when validation stops improving. Deterministic for a seed on CPU.
"""

import json
import math
import random
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mlcore import metrics
from mlcore.runtime import select_device, write_sidecar

DEFAULT_ENCODER_PARAMS = {
    "epochs": 3,
    "batch_size": 16,
    "learning_rate": 5e-5,
    "weight_decay": 0.01,
    "warmup_ratio": 0.1,
    "max_length": 128,
    "patience": 2,
    "seed": 13,
    "layer_decay": 1.0,  # < 1: each layer below the top learns at this factor of the one above (1: one rate)
    "class_weighting": "none",  # classifier: "balanced" weighs each label's loss by rows / (labels x its rows)
}
CLASS_WEIGHTINGS = ("none", "balanced")


class TrainingCancelled(Exception):
    """The operator asked to stop; the job ends cancelled, keeping nothing half-written."""


@dataclass
class Callbacks:
    on_step: Callable[[dict], None] = lambda event: None  # {step, total_steps, epoch, loss, progress}
    on_epoch: Callable[[dict], None] = lambda event: None  # {epoch, train_loss, val_*...}
    should_cancel: Callable[[], bool] = lambda: False
    step_report_every: int = 5


@dataclass
class TrainResult:
    best_dir: Path
    metrics: dict
    epochs_run: int
    stopped_early: bool
    resumed_from_epoch: int
    history: list = field(default_factory=list)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    order = list(range(n))
    random.Random(seed * 1000 + epoch).shuffle(order)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def _save_best(best_dir: Path, model, tokenizer, sidecar: dict) -> None:
    if best_dir.exists():
        shutil.rmtree(best_dir)
    model.save_pretrained(best_dir)
    tokenizer.save_pretrained(best_dir)
    write_sidecar(best_dir, sidecar)


def _write_checkpoint(work_dir: Path, model, optimizer, scheduler, state: dict) -> None:
    """Everything needed to resume after this epoch; written aside, then swapped in, so a kill mid-write
    leaves the previous checkpoint intact."""
    tmp, final = work_dir / "checkpoint.tmp", work_dir / "checkpoint"
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    torch.save({**state, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state()}, tmp / "state.pt")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)


def _read_checkpoint(ckpt_dir: Path, optimizer, scheduler) -> dict:
    # A GPU worker's checkpoint may be resumed by a CPU-only worker: load it on the CPU; the optimizer moves
    # its state to its parameters' device.
    state = torch.load(ckpt_dir / "state.pt", map_location="cpu", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    return state


def _val_score(kind: str, report: dict) -> float:
    """Higher is better: macro-F1 for classifiers, QWK (then -RMSE) for regressors."""
    if kind == "classifier":
        return report["macro_f1"]
    return report["qwk"] - 1e-3 * report["rmse"]


_LAYER_INDEX = re.compile(r"\.layers?\.(\d+)\.")
_NO_WEIGHT_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight")


def layer_depth(name: str, layers: int) -> int:
    """How deep a parameter sits: 0 for the embeddings, i + 1 for transformer layer i, layers + 1 for the rest
    (pooler, final norm, the task head)."""
    found = _LAYER_INDEX.search(name)
    if found:
        return int(found.group(1)) + 1
    return 0 if "embed" in name else layers + 1


def parameter_groups(model, *, learning_rate: float, weight_decay: float, layer_decay: float = 1.0) -> list[dict]:
    """AdamW groups: no weight decay on biases and layer norms. With `layer_decay` < 1, layer-wise learning-rate
    decay: the head and the top layer learn at `learning_rate`, each layer below at `layer_decay` times the one
    above, the embeddings lowest, so fine-tuning moves the general lower layers less than the task's top.

    At 1 (the default) the two groups are the ones a checkpoint written before this option holds, so a job
    killed then still resumes.
    """
    if not 0.0 < layer_decay <= 1.0:
        raise ValueError("layer_decay must be in (0, 1]")
    named = list(model.named_parameters())
    if layer_decay == 1.0:
        return [{"params": [w for n, w in named if not n.endswith(_NO_WEIGHT_DECAY)], "weight_decay": weight_decay},
                {"params": [w for n, w in named if n.endswith(_NO_WEIGHT_DECAY)], "weight_decay": 0.0}]
    layers = max((int(m.group(1)) + 1 for n, _ in named if (m := _LAYER_INDEX.search(n))), default=0)
    groups: dict[tuple[int, bool], dict] = {}
    for name, weight in named:
        depth, decays = layer_depth(name, layers), not name.endswith(_NO_WEIGHT_DECAY)
        group = groups.setdefault((depth, decays), {
            "params": [], "weight_decay": weight_decay if decays else 0.0,
            "lr": learning_rate * layer_decay ** (layers + 1 - depth)})
        group["params"].append(weight)
    return [groups[key] for key in sorted(groups)]


def train_encoder(
    *,
    base_path: str,
    kind: str,
    train: list[dict],
    validation: list[dict],
    labels: list[str] | None,
    params: dict,
    work_dir: Path,
    callbacks: Callbacks | None = None,
    base_spec: str = "",
) -> TrainResult:
    """Fine-tune an encoder on rows `{"text", "label"}` (classifier) or `{"text", "target"}` (regressor).

    A classifier row may carry `"confidence"` (0 < c <= 1, default 1): the training target is then `c` on its
    label and the rest shared by the other labels (a soft label, e.g. from how many annotators agreed). Only
    the training loss sees it; validation scores the labels as given.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    if kind not in {"classifier", "regressor"}:
        raise ValueError(f"cannot fine-tune an encoder as {kind!r}")
    if not train:
        raise ValueError("the training split is empty")
    cb = callbacks or Callbacks()
    p = {**DEFAULT_ENCODER_PARAMS, **{k: v for k, v in params.items() if v is not None}}
    _seed_everything(int(p["seed"]))
    device = select_device()
    work_dir = Path(work_dir)
    ckpt_dir, best_dir = work_dir / "checkpoint", work_dir / "best"

    if kind == "classifier":
        labels = list(labels or sorted({r["label"] for r in train}))
        label_index = {label: i for i, label in enumerate(labels)}
        targets = [label_index[r["label"]] for r in train]
        confidences = [float(r.get("confidence", 1.0)) for r in train]
        if not all(0.0 < c <= 1.0 for c in confidences):
            raise ValueError("a row's confidence must be in (0, 1]")
        sidecar = {"family": "classifier", "labels": labels}
        class_weight = class_weights(targets, len(labels), p["class_weighting"])
        class_weight = class_weight.to(device) if class_weight is not None else None
    else:
        values = [float(r["target"]) for r in train]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) or 1.0
        targets = [(v - mean) / std for v in values]
        sidecar = {"family": "regressor", "target_mean": mean, "target_std": std}
    sidecar["base_spec"] = base_spec

    resume = (ckpt_dir / "state.pt").exists()
    source = str(ckpt_dir) if resume else base_path
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    model_kwargs = (
        {"num_labels": len(labels), "id2label": dict(enumerate(labels)), "label2id": label_index}
        if kind == "classifier"
        else {"num_labels": 1, "problem_type": "regression"}
    )
    model = AutoModelForSequenceClassification.from_pretrained(source, **model_kwargs)
    model.to(device)

    epochs, batch_size = int(p["epochs"]), int(p["batch_size"])
    steps_per_epoch = math.ceil(len(train) / batch_size)
    total_steps = steps_per_epoch * epochs
    groups = parameter_groups(model, learning_rate=float(p["learning_rate"]), weight_decay=float(p["weight_decay"]),
                              layer_decay=float(p["layer_decay"]))
    optimizer = torch.optim.AdamW(groups, lr=float(p["learning_rate"]))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total_steps * float(p["warmup_ratio"])), total_steps)

    start_epoch, best_score, stale_epochs, history = 0, -math.inf, 0, []
    best_report: dict = {}
    if resume:
        state = _read_checkpoint(ckpt_dir, optimizer, scheduler)
        start_epoch, best_score, stale_epochs = state["epoch"] + 1, state["best_score"], state["stale_epochs"]
        history, best_report = state["history"], state["best_report"]
    resumed_from = start_epoch

    def predict(rows: list[dict]) -> list:
        model.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(rows), 64):
                batch = [r["text"] for r in rows[start : start + 64]]
                enc = tokenizer(batch, padding=True, truncation=True, max_length=int(p["max_length"]),
                                return_tensors="pt").to(device)
                logits = model(**enc).logits.float()
                if kind == "classifier":
                    out.extend(labels[i] for i in logits.argmax(-1).tolist())
                else:
                    out.extend(v * sidecar["target_std"] + sidecar["target_mean"] for v in logits[:, 0].tolist())
        model.train()
        return out

    def evaluate(rows: list[dict]) -> dict:
        if kind == "classifier":
            return metrics.classification_report([r["label"] for r in rows], predict(rows), labels)
        return metrics.regression_report([float(r["target"]) for r in rows], predict(rows))

    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )
    stopped_early = False
    epoch = start_epoch - 1
    model.train()
    for epoch in range(start_epoch, epochs):
        losses, started = [], time.monotonic()
        for step_in_epoch, idx in enumerate(_batches(len(train), batch_size, int(p["seed"]), epoch)):
            if cb.should_cancel():
                raise TrainingCancelled()
            enc = tokenizer([train[i]["text"] for i in idx], padding=True, truncation=True,
                            max_length=int(p["max_length"]), return_tensors="pt").to(device)
            y = torch.tensor([targets[i] for i in idx], device=device)
            with autocast:
                logits = model(**enc).logits
            if kind == "classifier":
                loss = torch.nn.functional.cross_entropy(logits.float(), _soft_targets(
                    y, [confidences[i] for i in idx], len(labels)), weight=class_weight)
            else:
                loss = torch.nn.functional.mse_loss(logits.float()[:, 0], y.float())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            step = epoch * steps_per_epoch + step_in_epoch + 1
            if step % cb.step_report_every == 0 or step_in_epoch == steps_per_epoch - 1:
                cb.on_step({
                    "step": step, "total_steps": total_steps, "epoch": epoch + 1,
                    "loss": sum(losses[-cb.step_report_every:]) / len(losses[-cb.step_report_every:]),
                    "progress": 100.0 * step / total_steps,
                })
        report = evaluate(validation) if validation else {}
        event = {"epoch": epoch + 1, "train_loss": sum(losses) / len(losses),
                 "seconds": round(time.monotonic() - started, 2), **{f"val_{k}": v for k, v in report.items()}}
        history.append(event)
        score = _val_score(kind, report) if report else -sum(losses) / len(losses)
        if score > best_score:
            best_score, best_report, stale_epochs = score, report, 0
            _save_best(best_dir, model, tokenizer, {**sidecar, "best_epoch": epoch + 1})
        else:
            stale_epochs += 1
        _write_checkpoint(work_dir, model, optimizer, scheduler, {
            "epoch": epoch, "best_score": best_score, "stale_epochs": stale_epochs, "history": history,
            "best_report": best_report,
        })
        cb.on_epoch(event)
        if validation and stale_epochs >= int(p["patience"]):
            stopped_early = True
            break

    (work_dir / "history.json").write_text(json.dumps(history, indent=2))
    return TrainResult(best_dir=best_dir, metrics=best_report, epochs_run=epoch + 1,
                       stopped_early=stopped_early, resumed_from_epoch=resumed_from, history=history)


def class_weights(targets: list[int], classes: int, weighting: str) -> torch.Tensor | None:
    """The cross-entropy's weight per label index: None for "none"; for "balanced" rows / (classes x the label's
    rows), so every label weighs as much in the loss as if the labels were even (a label with no rows: 1)."""
    if weighting not in CLASS_WEIGHTINGS:
        raise ValueError(f"class_weighting must be one of {', '.join(CLASS_WEIGHTINGS)}, not {weighting!r}")
    if weighting == "none":
        return None
    counts = [0] * classes
    for target in targets:
        counts[target] += 1
    return torch.tensor([len(targets) / (classes * n) if n else 1.0 for n in counts])


def _soft_targets(y: torch.Tensor, confidences: list[float], classes: int) -> torch.Tensor:
    """One row per label index: its confidence on the label, the rest spread evenly over the other classes."""
    c = torch.tensor(confidences, dtype=torch.float32, device=y.device)[:, None]
    rest = (1.0 - c) / max(classes - 1, 1)
    return torch.where(torch.nn.functional.one_hot(y, classes).bool(), c, rest)


DEFAULT_LORA_PARAMS = {
    "epochs": 2,
    "batch_size": 4,
    "block_size": 256,
    "learning_rate": 2e-4,
    "weight_decay": 0.0,
    "warmup_ratio": 0.05,
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "lora_mlp": False,
    "packing": False,
    "patience": 2,
    "seed": 13,
}


def _blocks(tokenizer, texts: list[str], block_size: int) -> list[list[int]]:
    """Concatenate the texts (each ended by EOS) and cut the token stream into equal blocks."""
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for text in texts:
        stream.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        if eos is not None:
            stream.append(eos)
    if len(stream) < 2:
        return []
    if len(stream) <= block_size:
        return [stream]
    return [stream[i : i + block_size] for i in range(0, len(stream) - block_size + 1, block_size)]


def _texts_alone(tokenizer, texts: list[str], block_size: int) -> list[list[int]]:
    """One sequence per text, tokenised as `runtime.perplexity` scores a text (special tokens included);
    a text longer than a block is cut into blocks, and a piece under two tokens (nothing to predict) is dropped.

    Packing teaches the model to continue across unrelated texts and scores each text's start after
    another one's end, while the app generates and evaluates each text on its own; and for short texts a
    packed block holds several of them, so an epoch takes several times fewer optimizer steps.
    """
    sequences = []
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        sequences.extend(ids[i : i + block_size] for i in range(0, len(ids), block_size))
    return [s for s in sequences if len(s) >= 2]


ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_PROJECTIONS = ("gate_proj", "up_proj", "down_proj")


def _lora_targets(model, *, mlp: bool = False) -> list[str] | str:
    """The attention projections (and the MLP ones when asked) by their Llama-style names."""
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    wanted = [n for n in ATTENTION_PROJECTIONS + (MLP_PROJECTIONS if mlp else ()) if n in names]
    return wanted or "all-linear"


def train_lora(
    *,
    base_path: str,
    train: list[str],
    validation: list[str],
    params: dict,
    work_dir: Path,
    callbacks: Callbacks | None = None,
    base_spec: str = "",
) -> TrainResult:
    """Train a LoRA adapter on plain texts; reports validation perplexity before and after.

    Each text is a sequence of its own, so the validation perplexity is the one `runtime.perplexity` gives;
    `params["packing"]` concatenates the texts into blocks of `block_size` tokens instead (on Story Cloze
    stories it gained a seventh of what one text per sequence did for the same data and compute, see
    docs/benchmarks.md "Stories"). `params["lora_mlp"]` adds the MLP projections to the attention ones.
    """
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_linear_schedule_with_warmup

    cb = callbacks or Callbacks()
    p = {**DEFAULT_LORA_PARAMS, **{k: v for k, v in params.items() if v is not None}}
    _seed_everything(int(p["seed"]))
    device = select_device()
    work_dir = Path(work_dir)
    ckpt_dir, best_dir = work_dir / "checkpoint", work_dir / "best"

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype)
    if getattr(base, "hf_quantizer", None) is not None:  # a model loaded straight from a GGUF
        base.hf_quantizer.remove_quantization_config(base)
    block_size = min(int(p["block_size"]), getattr(base.config, "max_position_embeddings", 2048))
    sequences = _blocks if p["packing"] else _texts_alone
    train_blocks = sequences(tokenizer, train, block_size)
    val_blocks = sequences(tokenizer, validation, block_size)
    if not train_blocks:
        raise ValueError("the training texts are empty after tokenisation")

    resume = (ckpt_dir / "state.pt").exists()
    if resume:
        model = PeftModel.from_pretrained(base, ckpt_dir, is_trainable=True)
    else:
        config = LoraConfig(r=int(p["lora_r"]), lora_alpha=int(p["lora_alpha"]), lora_dropout=float(p["lora_dropout"]),
                            target_modules=_lora_targets(base, mlp=bool(p["lora_mlp"])), task_type="CAUSAL_LM")
        model = get_peft_model(base, config)
    model.to(device)

    def perplexity(blocks: list[list[int]]) -> float:
        if not blocks:
            return float("nan")
        model.eval()
        total, count = 0.0, 0
        with torch.inference_mode():
            for start in range(0, len(blocks), int(p["batch_size"])):
                ids, mask = _pad(blocks[start : start + int(p["batch_size"])], tokenizer, device)
                labels = ids.masked_fill(mask == 0, -100)
                out = model(input_ids=ids, attention_mask=mask, labels=labels)
                n = int((labels[:, 1:] != -100).sum())
                total += out.loss.float().item() * n
                count += n
        model.train()
        return math.exp(total / max(count, 1))

    epochs, batch_size = int(p["epochs"]), int(p["batch_size"])
    steps_per_epoch = math.ceil(len(train_blocks) / batch_size)
    total_steps = steps_per_epoch * epochs
    optimizer = torch.optim.AdamW([w for w in model.parameters() if w.requires_grad], lr=float(p["learning_rate"]),
                                  weight_decay=float(p["weight_decay"]))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total_steps * float(p["warmup_ratio"])), total_steps)

    start_epoch, best_score, stale_epochs, history = 0, -math.inf, 0, []
    best_report: dict = {}
    if resume:
        state = _read_checkpoint(ckpt_dir, optimizer, scheduler)
        start_epoch, best_score, stale_epochs = state["epoch"] + 1, state["best_score"], state["stale_epochs"]
        history, best_report = state["history"], state["best_report"]
        ppl_before = state["perplexity_before"]
    else:
        ppl_before = perplexity(val_blocks)
    resumed_from = start_epoch
    sidecar = {"family": "lora_adapter", "base_spec": base_spec, "perplexity_before": ppl_before}

    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )
    stopped_early = False
    epoch = start_epoch - 1
    model.train()
    for epoch in range(start_epoch, epochs):
        losses, started = [], time.monotonic()
        for step_in_epoch, idx in enumerate(_batches(len(train_blocks), batch_size, int(p["seed"]), epoch)):
            if cb.should_cancel():
                raise TrainingCancelled()
            ids, mask = _pad([train_blocks[i] for i in idx], tokenizer, device)
            with autocast:
                out = model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_([w for w in model.parameters() if w.requires_grad], 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(out.loss.item())
            step = epoch * steps_per_epoch + step_in_epoch + 1
            if step % cb.step_report_every == 0 or step_in_epoch == steps_per_epoch - 1:
                recent = losses[-cb.step_report_every:]
                cb.on_step({"step": step, "total_steps": total_steps, "epoch": epoch + 1,
                            "loss": sum(recent) / len(recent), "progress": 100.0 * step / total_steps})
        ppl = perplexity(val_blocks) if val_blocks else math.exp(sum(losses) / len(losses))
        report = {"perplexity_before": ppl_before, "perplexity": ppl, "n_blocks": len(val_blocks)}
        event = {"epoch": epoch + 1, "train_loss": sum(losses) / len(losses),
                 "seconds": round(time.monotonic() - started, 2), "val_perplexity": ppl}
        history.append(event)
        if -ppl > best_score:
            best_score, best_report, stale_epochs = -ppl, report, 0
            # A peft model saves the adapter only (a few MB).
            _save_best(best_dir, model, tokenizer, {**sidecar, "perplexity_after": ppl, "best_epoch": epoch + 1})
        else:
            stale_epochs += 1
        _write_checkpoint(work_dir, model, optimizer, scheduler, {
            "epoch": epoch, "best_score": best_score, "stale_epochs": stale_epochs, "history": history,
            "best_report": best_report, "perplexity_before": ppl_before,
        })
        cb.on_epoch(event)
        if val_blocks and stale_epochs >= int(p["patience"]):
            stopped_early = True
            break

    (work_dir / "history.json").write_text(json.dumps(history, indent=2))
    return TrainResult(best_dir=best_dir, metrics=best_report, epochs_run=epoch + 1,
                       stopped_early=stopped_early, resumed_from_epoch=resumed_from, history=history)


def _pad(blocks: list[list[int]], tokenizer, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(b) for b in blocks)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    ids = torch.full((len(blocks), width), pad, dtype=torch.long)
    mask = torch.zeros((len(blocks), width), dtype=torch.long)
    for row, block in enumerate(blocks):
        ids[row, : len(block)] = torch.tensor(block)
        mask[row, : len(block)] = 1
    return ids.to(device), mask.to(device)

"""The model layer on an accelerator (issue 3): training, serving and a worker on PARLANCE_TEST_DEVICE.

Written for a GPU (`.ci/device-check` runs it there); `PARLANCE_TEST_DEVICE=cpu` runs the same tests on
any machine, which is how their logic is checked where no GPU is lent. Where the device is missing, every
test is skipped with the reason, so a CPU-only run can never count as a GPU check that passed.

The encoder is served by torch here on every device, as a GPU serves it (on CPU ONNX Runtime would).
"""

import math
import os

import pytest
import torch
from torch.nn.modules.module import register_module_forward_hook
from torch.optim.optimizer import register_optimizer_step_pre_hook

from mlcore import api, runtime, services
from mlcore.models import Dataset, Task, TrainingJob
from mlcore.training import Callbacks, train_encoder, train_lora
from tests.mlcore.conftest import CORPUS, sentiment_csv
from tests.workers import app_broker_env, celery_worker, purge_app_queues, require_redis, wait_for

DEVICE_NAME = os.environ.get("PARLANCE_TEST_DEVICE", "cuda")


def _unavailable(name: str) -> str:
    """Why `name` cannot hold a tensor in this process ("" when it can)."""
    try:
        torch.zeros(1, device=torch.device(name))
    except (RuntimeError, AssertionError) as exc:  # AssertionError: "Torch not compiled with CUDA enabled"
        return (f"PARLANCE_TEST_DEVICE={name} is not usable here (torch {torch.__version__}, "
                f"CUDA build {torch.version.cuda or 'none'}): {str(exc).splitlines()[0]}")
    return ""


UNAVAILABLE = _unavailable(DEVICE_NAME)
DEVICE = torch.device(DEVICE_NAME).type if not UNAVAILABLE else DEVICE_NAME
# What the training forward passes compute in: bf16 autocast on CUDA, fp32 everywhere else.
TRAINING_DTYPE = torch.bfloat16 if DEVICE == "cuda" else torch.float32

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(bool(UNAVAILABLE), reason=UNAVAILABLE)]

ROWS = [{"text": f"{w} results in quarter {i}", "label": lab}
        for i in range(8) for w, lab in (("great", "positive"), ("awful", "negative"), ("plain", "neutral"))]
TRAIN, VAL = ROWS[:18], ROWS[18:]


@pytest.fixture(autouse=True)
def on_the_device(settings):
    """Point mlcore at the device under test, on the torch paths a GPU takes."""
    settings.MLCORE_DEVICE = DEVICE_NAME
    settings.MLCORE_ENCODER_BACKEND = "torch"
    settings.MLCORE_CPU_INT8 = frozenset()
    settings.MLCORE_LM_BACKEND = "transformers"


class TrainingTrace:
    """What the training loop actually ran on, seen through torch's global hooks (training.py keeps its model
    to itself): the device of every parameter an optimizer stepped, and the dtype of every Linear output in
    a training-mode forward pass (bf16 there means autocast was on)."""

    def __init__(self):
        self.param_devices: set[str] = set()
        self.linear_dtypes: set[torch.dtype] = set()

    def on_optimizer_step(self, optimizer, args, kwargs):
        self.param_devices.update(p.device.type for group in optimizer.param_groups for p in group["params"])

    def on_forward(self, module, args, output):
        if module.training and isinstance(module, torch.nn.Linear):
            self.linear_dtypes.add(output.dtype)


@pytest.fixture
def training_trace():
    trace = TrainingTrace()
    handles = [register_optimizer_step_pre_hook(trace.on_optimizer_step),
               register_module_forward_hook(trace.on_forward)]
    yield trace
    for handle in handles:
        handle.remove()


def assert_served_on_the_device(loaded: runtime.Loaded) -> None:
    assert loaded.device.type == DEVICE
    assert {p.device.type for p in loaded.model.parameters()} == {DEVICE}


def test_an_encoder_finetune_trains_on_the_device_and_its_best_checkpoint_serves_there(tmp_path, tiny_encoder_dir,
                                                                                        training_trace):
    steps = []
    result = train_encoder(base_path=str(tiny_encoder_dir), kind="classifier", train=TRAIN, validation=VAL,
                           labels=None, params={"epochs": 2, "batch_size": 6, "learning_rate": 1e-3},
                           work_dir=tmp_path, callbacks=Callbacks(on_step=steps.append, step_report_every=1))

    assert training_trace.param_devices == {DEVICE}
    assert training_trace.linear_dtypes == {TRAINING_DTYPE}
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(s["loss"]) for s in steps)

    best = str(result.best_dir)
    predictions = runtime.classify(best, [r["text"] for r in VAL])
    assert_served_on_the_device(runtime.encoder(best, "classifier"))
    labels = ["negative", "neutral", "positive"]
    for p in predictions:
        assert p["label"] in labels and set(p["scores"]) == set(labels)
        assert p["scores"][p["label"]] == max(p["scores"].values())
        assert sum(p["scores"].values()) == pytest.approx(1.0, abs=1e-4)
    # The saved checkpoint is the one that was validated: serving it gives the reported accuracy.
    served_accuracy = sum(p["label"] == r["label"] for p, r in zip(predictions, VAL, strict=True)) / len(VAL)
    assert served_accuracy == pytest.approx(result.metrics["accuracy"])


def test_a_lora_finetune_trains_on_the_device_and_its_adapter_lowers_perplexity_there(tmp_path, tiny_lm_dir,
                                                                                       training_trace):
    steps = []
    result = train_lora(base_path=str(tiny_lm_dir), train=CORPUS, validation=CORPUS[:8], work_dir=tmp_path,
                        params={"epochs": 2, "batch_size": 4, "block_size": 32, "learning_rate": 1e-2},
                        callbacks=Callbacks(on_step=steps.append, step_report_every=1))

    assert training_trace.param_devices == {DEVICE}
    assert training_trace.linear_dtypes == {TRAINING_DTYPE}
    assert steps and all(math.isfinite(s["loss"]) for s in steps)
    assert "adapter_model.safetensors" in {p.name for p in result.best_dir.iterdir()}

    base, adapter = str(tiny_lm_dir), str(result.best_dir)
    before = runtime.perplexity(base, CORPUS[:8])
    after = runtime.perplexity(base, CORPUS[:8], adapter=adapter)
    assert_served_on_the_device(runtime.causal_lm(base, adapter))
    assert math.isfinite(after) and 1.0 < after < before


def test_generation_on_the_device_is_repeatable_and_stops_at_max_new_tokens(tiny_lm_dir):
    path = str(tiny_lm_dir)
    loaded = runtime.causal_lm(path)
    assert_served_on_the_device(loaded)
    # A random model may well end at once; without its special tokens it has to run to max_new_tokens.
    loaded.model.generation_config.suppress_tokens = loaded.tokenizer.all_special_ids

    def greedy():
        return "".join(runtime.generate(path, "once upon a time", max_new_tokens=7, temperature=0.0, seed=3))

    text = greedy()
    assert len(text.split()) == 7  # one word per token (a word-level tokenizer)
    assert greedy() == text


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_on_the_device_runs_a_finetune_to_a_registered_version(mlcore_home, tiny_encoder_dir, tmp_path):
    from core.celery import app

    if app.conf.broker_url.startswith("redis"):
        require_redis(app.conf.broker_url)
    purge_app_queues()
    # The worker is told the device, not left to choose: a worker that cannot use it fails the job.
    env = {**app_broker_env(), "MLCORE_HOME": str(mlcore_home), "MLCORE_ENCODER": str(tiny_encoder_dir),
           "MLCORE_DEVICE": DEVICE_NAME, "MLCORE_ENCODER_BACKEND": "torch"}
    dataset = services.dataset_create(name="sentiment", kind=Dataset.Kind.CLASSIFICATION,
                                      data=sentiment_csv(), filename="s.csv")
    with celery_worker(broker_url=env["CELERY_BROKER_URL"], queues="ml", pool="solo", extra_env=env,
                       log_dir=tmp_path) as (_, hostname):
        job = api.start_finetune(Task.FINANCE_SENTIMENT, dataset, epochs=2, batch_size=8)

        def finished():
            row = TrainingJob.objects.get(pk=job.pk)
            return row.state in ("succeeded", "failed") and row

        row = wait_for(finished, timeout=240, interval=0.2, what="the fine-tune to finish")
    assert row.state == "succeeded", row.log_tail
    assert row.worker == hostname
    version = row.result_version
    assert version is not None and "macro_f1" in version.metrics
    services.model_version_activate(version=version)
    out = api.predict(Task.FINANCE_SENTIMENT, ["Acme profit rose", "Globex loss widened"])
    assert [set(o["scores"]) for o in out] == [{"positive", "neutral", "negative"}] * 2

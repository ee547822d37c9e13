"""LoRA fine-tuning of a causal LM on plain text, and generation through the adapter."""

import pytest

from mlcore import api, runtime, services
from mlcore.models import Dataset, Family, Task
from mlcore.training import train_lora
from tests.mlcore.conftest import CORPUS

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("packing", [False, True])
def test_lora_lowers_perplexity_and_saves_only_the_adapter(tmp_path, tiny_lm_dir, packing):
    result = train_lora(base_path=str(tiny_lm_dir), train=CORPUS, validation=CORPUS[:8], work_dir=tmp_path,
                        params={"epochs": 3, "batch_size": 2, "block_size": 32, "learning_rate": 5e-3,
                                "packing": packing})
    assert result.metrics["perplexity"] < result.metrics["perplexity_before"]
    files = {p.name for p in result.best_dir.iterdir()}
    assert "adapter_model.safetensors" in files and "model.safetensors" not in files


def test_lora_resumes_from_its_checkpoint(tmp_path, tiny_lm_dir):
    from mlcore.training import Callbacks

    class Killed(Exception):
        pass

    def die(event):
        raise Killed()

    params = {"epochs": 2, "batch_size": 2, "block_size": 32, "learning_rate": 5e-3}
    with pytest.raises(Killed):
        train_lora(base_path=str(tiny_lm_dir), train=CORPUS, validation=CORPUS[:8], work_dir=tmp_path,
                   params=params, callbacks=Callbacks(on_epoch=die))
    resumed = train_lora(base_path=str(tiny_lm_dir), train=CORPUS, validation=CORPUS[:8], work_dir=tmp_path,
                         params=params)
    assert resumed.resumed_from_epoch == 1
    assert [h["epoch"] for h in resumed.history] == [1, 2]


def test_a_story_finetune_registers_an_adapter_that_generation_uses_for_its_scope(
    tiny_lm_dir, mlcore_home, django_capture_on_commit_callbacks
):
    base = services.model_version_activate(version=services.model_version_register(
        task=Task.STORY, family=Family.CAUSAL_LM, base_spec=str(tiny_lm_dir)))
    corpus = "\n\n".join(f"{line} number {i}" for i, line in enumerate(CORPUS)).encode()
    dataset = services.dataset_create(name="writer corpus", kind=Dataset.Kind.TEXT, data=corpus, filename="c.txt")
    with django_capture_on_commit_callbacks(execute=False):
        job = services.finetune_start(task=Task.STORY, dataset=dataset, scope="project:1",
                                      params={"epochs": 2, "batch_size": 2, "block_size": 32, "learning_rate": 5e-3})
    assert services.finetune_run(job_id=job.pk) == "succeeded"
    job.refresh_from_db()
    adapter = job.result_version
    assert adapter.family == Family.LORA_ADAPTER and adapter.scope == "project:1"
    assert adapter.base_spec == base.base_spec
    assert {"perplexity", "perplexity_before"} <= set(adapter.metrics)
    services.model_version_activate(version=adapter)
    base.refresh_from_db()
    assert base.state == "active"  # the adapter's scope has its own active version

    runtime.cache.clear()
    # (A tiny random model may well answer with end-of-text at once; what matters is which weights ran.)
    "".join(api.generate(Task.STORY, "once upon", scope="project:1", max_new_tokens=5, seed=1))
    assert any(key[2] is not None and key[2].endswith(adapter.artifact_path) for key in runtime.cache.keys())
    runtime.cache.clear()
    "".join(api.generate(Task.STORY, "once upon", max_new_tokens=5, seed=1))
    assert all(key[2] is None for key in runtime.cache.keys())

    report = api.evaluate(adapter, dataset, split=None)
    assert report["perplexity"] > 1 and report["n"] == dataset.rows_kept


def test_lora_on_texts_alone_validates_each_text_as_runtime_perplexity_scores_it(tmp_path, tiny_lm_dir):
    validation = ["once upon a time the keeper lit the lamp .", "profit rose .", "the keeper lit the lamp ."]
    result = train_lora(base_path=str(tiny_lm_dir), train=CORPUS, validation=validation, work_dir=tmp_path,
                        params={"epochs": 1, "batch_size": 4, "block_size": 32, "learning_rate": 5e-3,
                                "packing": False})
    assert result.metrics["perplexity_before"] == pytest.approx(runtime.perplexity(str(tiny_lm_dir), validation),
                                                                rel=1e-4)
    after = runtime.perplexity(str(tiny_lm_dir), validation, adapter=str(result.best_dir))
    assert result.metrics["perplexity"] == pytest.approx(after, rel=1e-4)
    assert result.metrics["n_blocks"] == len(validation)


def test_lora_on_texts_alone_takes_a_step_per_batch_of_texts(tmp_path, tiny_lm_dir):
    from mlcore.training import Callbacks

    steps = []
    train_lora(base_path=str(tiny_lm_dir), train=CORPUS, validation=CORPUS[:4], work_dir=tmp_path,
               params={"epochs": 1, "batch_size": 4, "block_size": 32, "packing": False},
               callbacks=Callbacks(on_step=steps.append, step_report_every=1))
    assert [e["step"] for e in steps] == [1, 2, 3, 4, 5, 6]  # 24 texts in batches of 4 (packed: 2 steps)


def test_lora_adapts_the_mlp_projections_when_asked(tmp_path, tiny_lm_dir):
    import json

    result = train_lora(base_path=str(tiny_lm_dir), train=CORPUS, validation=CORPUS[:4], work_dir=tmp_path,
                        params={"epochs": 1, "batch_size": 4, "block_size": 32, "lora_mlp": True})
    config = json.loads((result.best_dir / "adapter_config.json").read_text())
    assert set(config["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                             "down_proj"}

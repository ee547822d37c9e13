"""The real packaged weights, loaded offline: sensible embeddings, predictions and generations."""

import pytest
from django.conf import settings

from mlcore import runtime, specs
from mlcore.bootstrap import packaged_models_prepare
from mlcore.training import train_encoder
from tests.mlcore.conftest import NEGATIVE, NEUTRAL, POSITIVE
from tests.mlcore.test_llamacpp import require_llamacpp

pytestmark = pytest.mark.realmodel


@pytest.fixture(scope="module")
def real_models():
    # The checkout's own MLCORE_HOME, so the one-off GGUF conversion is reused between runs.
    prepared = packaged_models_prepare(say=lambda line: None)
    return {name: str(path) for name, path in prepared.items()}


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_minilm_embeddings_put_paraphrases_together(real_models):
    a, b, c = runtime.embed(real_models["minilm"], [
        "A man is playing a guitar.", "Someone plays an instrument.", "The central bank raised interest rates."])
    assert cosine(a, b) > 0.5
    assert cosine(a, c) < 0.2


def test_a_briefly_fine_tuned_minilm_reads_sentiment_it_has_not_seen(real_models, tmp_path):
    rows = [{"text": f"The company said {phrase} this quarter", "label": label}
            for label, phrases in (("positive", POSITIVE), ("negative", NEGATIVE), ("neutral", NEUTRAL))
            for phrase in phrases for _ in range(3)]
    result = train_encoder(base_path=real_models["minilm"], kind="classifier", train=rows, validation=rows[::5],
                           labels=["positive", "neutral", "negative"], work_dir=tmp_path,
                           params={"epochs": 4, "batch_size": 8, "learning_rate": 1e-4, "patience": 4})
    out = runtime.classify(str(result.best_dir), [
        "Quarterly profit rose and sales hit a record",
        "The firm's loss widened as sales were weak",
    ])
    assert [o["label"] for o in out] == ["positive", "negative"]


@pytest.fixture(params=["transformers", "llamacpp"])
def lm_backend(request, settings):
    """Each generation test runs through transformers and through llama.cpp on the packaged GGUF."""
    if request.param == "llamacpp":
        require_llamacpp()
    settings.MLCORE_LM_BACKEND = request.param
    return request.param


def test_smollm2_converted_from_the_gguf_generates_english(real_models, lm_backend):
    assert specs.resolve("package:smollm2") == str(settings.MLCORE_HOME / "base" / "smollm2")
    pieces = list(runtime.generate(real_models["smollm2"], "Name three colours.", max_new_tokens=30, seed=1,
                                   temperature=0.0))
    text = "".join(pieces)
    assert len(pieces) > 3
    assert sum(ch.isalpha() for ch in text) > 20
    assert any(colour in text.lower() for colour in ("red", "blue", "green", "yellow"))


def test_smollm2_stops_at_a_stop_string(real_models, lm_backend):
    kwargs = {"max_new_tokens": 40, "temperature": 0.0}
    full = "".join(runtime.generate(real_models["smollm2"], "Describe a lighthouse at night.", **kwargs))
    words = full.split()
    assert len(words) > 8
    stop = " " + words[len(words) // 2]
    cut = "".join(runtime.generate(real_models["smollm2"], "Describe a lighthouse at night.", stop=[stop], **kwargs))
    assert cut == full[: full.find(stop)]


def test_llamacpp_serves_the_packaged_gguf_greedily_and_reproducibly(real_models, settings):
    require_llamacpp()
    from mlcore import llamacpp

    settings.MLCORE_LM_BACKEND = "llamacpp"
    prompt = "Write one sentence about the sea."
    first = "".join(runtime.generate(real_models["smollm2"], prompt, max_new_tokens=25, temperature=0.0))
    again = "".join(runtime.generate(real_models["smollm2"], prompt, max_new_tokens=25, temperature=0.0))
    assert first == again and sum(ch.isalpha() for ch in first) > 20
    assert any(key.endswith(".gguf") for key in llamacpp._models)
    sampled = ["".join(runtime.generate(real_models["smollm2"], prompt, max_new_tokens=25, temperature=0.9, seed=s))
               for s in (1, 1, 2)]
    assert sampled[0] == sampled[1] != sampled[2]

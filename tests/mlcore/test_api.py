import math

import pytest

from mlcore import api, runtime, services
from mlcore.models import Family, Task

pytestmark = pytest.mark.django_db


@pytest.fixture
def trained_sentiment(tmp_path, tiny_encoder_dir, mlcore_home):
    from mlcore.training import train_encoder

    rows = [{"text": f"{w} news {i}", "label": lab}
            for i in range(10) for w, lab in (("good", "positive"), ("bad", "negative"), ("dull", "neutral"))]
    train_encoder(base_path=str(tiny_encoder_dir), kind="classifier", train=rows, validation=rows[:6],
                           labels=["positive", "neutral", "negative"], params={"epochs": 1}, work_dir=mlcore_home / "w")
    v = services.model_version_register(task=Task.FINANCE_SENTIMENT, family=Family.CLASSIFIER,
                                        base_spec=str(tiny_encoder_dir), artifact_path="w/best",
                                        label_map=["positive", "neutral", "negative"])
    return services.model_version_activate(version=v)


def test_predict_without_an_active_version_says_what_to_do():
    with pytest.raises(api.NoActiveVersion, match="An operator trains or activates one"):
        api.predict(Task.FINANCE_SENTIMENT, ["x"])


def test_predict_returns_labels_and_probabilities_in_input_order(trained_sentiment):
    texts = ["good news 1", "a much longer sentence about bad news in the market today", "dull news", "good"]
    out = api.predict(Task.FINANCE_SENTIMENT, texts)
    assert len(out) == 4
    for row in out:
        assert set(row["scores"]) == {"positive", "neutral", "negative"}
        assert math.isclose(sum(row["scores"].values()), 1.0, rel_tol=1e-5)
        assert row["label"] == max(row["scores"], key=row["scores"].get)
    # Order is preserved although batches are sorted by length. On CPU classifiers run with dynamic int8,
    # whose activation scale depends on the batch, so a text alone differs from it in a batch by ~1e-4.
    singles = [api.predict(Task.FINANCE_SENTIMENT, [t])[0] for t in texts]
    for batched, single in zip(out, singles, strict=True):
        assert batched["label"] == single["label"]
        for label in batched["scores"]:
            assert batched["scores"][label] == pytest.approx(single["scores"][label], abs=2e-3)


def test_predict_rejects_a_bare_string_and_accepts_an_empty_list(trained_sentiment):
    with pytest.raises(TypeError):
        api.predict(Task.FINANCE_SENTIMENT, "good news")
    assert api.predict(Task.FINANCE_SENTIMENT, []) == []


def test_embed_gives_unit_vectors_in_order(tiny_encoder_spec):
    vectors = api.embed(["alpha", "a longer text about beta and gamma", "alpha"])
    assert len(vectors) == 3 and len(vectors[0]) == 32
    assert all(math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-4) for v in vectors)
    assert vectors[0] == pytest.approx(vectors[2], abs=1e-6)
    assert vectors[0] != pytest.approx(vectors[1], abs=1e-3)


def test_score_uses_the_scoped_regressor(tiny_encoder_dir, mlcore_home):
    from mlcore.training import train_encoder

    rows = [{"text": f"essay {i}", "target": float(i % 4 + 1)} for i in range(16)]
    train_encoder(base_path=str(tiny_encoder_dir), kind="regressor", train=rows, validation=rows[:4], labels=None,
                  params={"epochs": 1}, work_dir=mlcore_home / "r")
    v = services.model_version_register(task=Task.ESSAY_SCORE, scope="assignment:7", family=Family.REGRESSOR,
                                        base_spec=str(tiny_encoder_dir), artifact_path="r/best")
    services.model_version_activate(version=v)
    scores = api.score(Task.ESSAY_SCORE, ["essay 1", "essay 2"], scope="assignment:7")
    assert len(scores) == 2 and all(0 < s < 6 for s in scores)
    with pytest.raises(api.NoActiveVersion):
        api.score(Task.ESSAY_SCORE, ["essay"], scope="assignment:8")


def test_generate_streams_pieces_and_honours_seed_and_stop(tiny_lm_dir):
    v = services.model_version_register(task=Task.STORY, family=Family.CAUSAL_LM, base_spec=str(tiny_lm_dir))
    services.model_version_activate(version=v)
    kwargs = {"max_new_tokens": 20, "seed": 3, "temperature": 1.0}
    first = list(api.generate(Task.STORY, "Once upon a time", **kwargs))
    second = list(api.generate(Task.STORY, "Once upon a time", **kwargs))
    assert len(first) > 1 and "".join(first) == "".join(second)
    text = "".join(first)
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    if stop.strip():
        cut = "".join(api.generate(Task.STORY, "Once upon a time", stop=[stop], **kwargs))
        assert cut == text[: text.find(stop)]


def test_the_model_cache_is_bounded():
    cache = runtime.ModelCache(max_bytes=100)
    loads = []

    def loader(name, size):
        def load():
            loads.append(name)
            return runtime.Loaded(None, None, "x", None, size)
        return load

    cache.get(("a",), loader("a", 60))
    cache.get(("b",), loader("b", 30))
    cache.get(("a",), loader("a", 60))  # a is now the most recent
    cache.get(("c",), loader("c", 30))  # 120 > 100: b, the least recent, goes
    assert cache.keys() == [("a",), ("c",)]
    assert loads == ["a", "b", "c"]


def test_classifiers_run_int8_on_cpu_unless_disabled(trained_sentiment, settings):
    from mlcore import runtime

    path = api.version_path(trained_sentiment)
    runtime.cache.clear()
    int8 = api.predict(Task.FINANCE_SENTIMENT, ["good news 1", "dull news"])
    assert runtime.encoder(path, "classifier").meta.get("int8") is True
    settings.MLCORE_CPU_INT8 = frozenset()
    runtime.cache.clear()
    fp32 = api.predict(Task.FINANCE_SENTIMENT, ["good news 1", "dull news"])
    assert not runtime.encoder(path, "classifier").meta.get("int8")
    for a, b in zip(int8, fp32, strict=True):
        assert a["label"] == b["label"]
        for label in a["scores"]:
            assert a["scores"][label] == pytest.approx(b["scores"][label], abs=0.02)


def test_texts_longer_than_the_model_are_cut_to_its_positions(tiny_encoder_spec):
    # The tiny encoder has 128 positions; the runtime's default limit (256) must not index past them.
    long_text = " ".join(["good news"] * 200)
    vectors = api.embed([long_text, "good"])
    assert len(vectors) == 2 and all(abs(sum(x * x for x in v) - 1.0) < 1e-4 for v in vectors)


def _reference_logprob(loaded, context: str, continuation: str) -> float:
    """The continuation's mean log-probability from one unpadded pass over the whole sequence."""
    import torch

    ctx = loaded.tokenizer(context)["input_ids"]
    cont = loaded.tokenizer(continuation, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = loaded.model(input_ids=torch.tensor([ctx + cont])).logits[0]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return float(sum(logprobs[len(ctx) - 1 + j, token] for j, token in enumerate(cont)) / len(cont))


def test_likelihood_scores_each_continuation_after_its_context_as_one_unpadded_pass_would(tiny_lm_dir):
    v = services.model_version_register(task=Task.TUTOR, family=Family.CAUSAL_LM, base_spec=str(tiny_lm_dir))
    services.model_version_activate(version=v)
    contexts = ["once upon a time the keeper lit the lamp .", "the keeper", "once upon a time , the lamp"]
    continuations = [" the lamp", " lit the lamp . once upon a time", " keeper"]
    # Batches of two with the longest first: the shorter sequences are padded (on the left).
    values = runtime.continuation_logprobs(str(tiny_lm_dir), list(zip(contexts, continuations, strict=True)),
                                           batch_size=2)
    loaded = runtime.causal_lm(str(tiny_lm_dir))
    expected = [_reference_logprob(loaded, c, k) for c, k in zip(contexts, continuations, strict=True)]
    assert values == pytest.approx(expected, abs=1e-4)
    assert len(set(values)) == 3  # three different figures, in input order
    assert api.likelihood(Task.TUTOR, contexts, continuations) == pytest.approx(expected, abs=1e-4)
    assert api.likelihood(Task.TUTOR, [], []) == []
    with pytest.raises(ValueError, match="2 contexts for 1 continuations"):
        api.likelihood(Task.TUTOR, contexts[:2], continuations[:1])
    with pytest.raises(TypeError):
        api.likelihood(Task.TUTOR, "the keeper", " lit")


def test_likelihood_cuts_a_long_context_from_the_left_and_scores_an_empty_continuation_0(tiny_lm_dir):
    loaded = runtime.causal_lm(str(tiny_lm_dir))
    context = "once upon a time the keeper lit the lamp . " * 6
    continuation = " the keeper lit the lamp"
    cont = loaded.tokenizer(continuation, add_special_tokens=False)["input_ids"]
    ctx = loaded.tokenizer(context)["input_ids"]
    assert len(ctx) + len(cont) > 40
    [value] = runtime.continuation_logprobs(str(tiny_lm_dir), [(context, continuation)], max_length=40)
    kept = loaded.tokenizer.decode(ctx[-(40 - len(cont)):])
    assert value == pytest.approx(_reference_logprob(loaded, kept, continuation), abs=1e-4)
    assert runtime.continuation_logprobs(str(tiny_lm_dir), [(context, "")]) == [0.0]


def test_a_likelihood_is_computed_once_per_model_version_and_texts(tiny_lm_dir):
    first = services.model_version_register(task=Task.TUTOR, family=Family.CAUSAL_LM, base_spec=str(tiny_lm_dir))
    services.model_version_activate(version=first)
    contexts, continuations = ["the keeper lit", "once upon a time"], [" the lamp", " the lamp"]
    values = api.likelihood(Task.TUTOR, contexts, continuations)
    runtime.cache.clear()  # no model loaded: a figure asked again comes from the cache, not from a pass
    assert api.likelihood(Task.TUTOR, contexts[::-1], continuations) == values[::-1]
    assert not runtime.cache.keys()
    # A new pair is computed (and only the new one is added); another version computes its own.
    api.likelihood(Task.TUTOR, ["the keeper lit", "a time"], [" the lamp", " the lamp"])
    assert runtime.cache.keys()
    second = services.model_version_register(task=Task.TUTOR, family=Family.CAUSAL_LM, base_spec=str(tiny_lm_dir))
    services.model_version_activate(version=second)
    runtime.cache.clear()
    assert api.likelihood(Task.TUTOR, contexts, continuations) == pytest.approx(values)
    assert runtime.cache.keys()

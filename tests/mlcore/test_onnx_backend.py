"""Encoders served through ONNX Runtime on CPU (MLCORE_ENCODER_BACKEND=onnx) against the torch path."""

import shutil

import pytest

from mlcore import onnx_serving, runtime

LABELS = ["positive", "neutral", "negative"]
TEXTS = [
    "good news",
    "a much longer sentence about bad news in the market today, with more words than the others",
    "dull",
    "profits rose",
    " ".join(["quarterly results were mixed"] * 40),  # past the tiny model's 128 positions: cut to them
]


def save_with_head(source, target, *, num_labels: int, seed: int, redraw_std: float | None = None):
    """`source`'s encoder with a saved random head, on which texts get clearly different scores.

    The tiny fixture's initialisation (std 0.02) gives every text nearly the same pooled vector, so a
    comparison of scores would prove little; `redraw_std` redraws its matrices wider first.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    labels = LABELS if num_labels == 3 else ["score"]
    model = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=num_labels, id2label=dict(enumerate(labels)), label2id={x: i for i, x in enumerate(labels)})
    with torch.no_grad():
        for parameter in model.parameters():
            if redraw_std and parameter.dim() == 2:
                parameter.normal_(0, redraw_std)
        model.classifier.weight.normal_(0, 1.0)
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return str(target)


@pytest.fixture(scope="module")
def tiny_classifier_dir(tmp_path_factory, tiny_encoder_dir):
    target = tmp_path_factory.mktemp("tiny-classifier")
    return save_with_head(tiny_encoder_dir, target, num_labels=3, seed=3, redraw_std=0.12)


@pytest.fixture(scope="module")
def tiny_regressor_dir(tmp_path_factory, tiny_encoder_dir):
    target = tmp_path_factory.mktemp("tiny-regressor")
    return save_with_head(tiny_encoder_dir, target, num_labels=1, seed=2, redraw_std=0.12)


@pytest.fixture
def backend(settings, mlcore_home):
    """Switch the encoder backend (and which kinds run int8) between calls; each switch loads afresh."""

    def switch(name: str, *, int8: tuple[str, ...] = ()):
        settings.MLCORE_ENCODER_BACKEND = name
        settings.MLCORE_CPU_INT8 = frozenset(int8)
        runtime.cache.clear()

    return switch


def scores(out: list[dict]) -> list[list[float]]:
    return [[row["scores"][label] for label in LABELS] for row in out]


def test_onnx_fp32_classifies_like_torch_fp32(backend, tiny_classifier_dir, mlcore_home):
    backend("torch")
    expected = runtime.classify(tiny_classifier_dir, TEXTS)
    backend("onnx")
    got = runtime.classify(tiny_classifier_dir, TEXTS)

    loaded = runtime.encoder(tiny_classifier_dir, "classifier")
    assert loaded.meta["backend"] == "onnx" and not loaded.meta.get("int8")
    assert loaded.model.file.parent.parent == mlcore_home / "onnx"
    # The head is wide enough that the comparison means something: the texts do not all score alike.
    assert len({row["label"] for row in expected}) > 1
    assert [row["label"] for row in got] == [row["label"] for row in expected]
    for mine, theirs in zip(scores(got), scores(expected), strict=True):
        assert mine == pytest.approx(theirs, abs=1e-4)


def test_onnx_regresses_and_embeds_like_torch(backend, tiny_regressor_dir, tiny_encoder_dir):
    path = str(tiny_encoder_dir)
    backend("torch")
    values, vectors = runtime.regress(tiny_regressor_dir, TEXTS), runtime.embed(path, TEXTS)
    backend("onnx")
    assert runtime.regress(tiny_regressor_dir, TEXTS) == pytest.approx(values, abs=1e-4)
    assert max(values) - min(values) > 0.05
    onnx_vectors = runtime.embed(path, TEXTS)
    assert runtime.encoder(path, "embedder").meta["backend"] == "onnx"
    for mine, theirs in zip(onnx_vectors, vectors, strict=True):
        assert mine == pytest.approx(theirs, abs=1e-4)


def test_the_middle_layer_comes_with_the_last_from_one_pass_through_torch_and_onnx(backend, tiny_encoder_dir):
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = str(tiny_encoder_dir)
    backend("torch")
    last, middle = runtime.embed_with_middle(path, TEXTS)
    assert last == runtime.embed(path, TEXTS)
    # By hand: layer 1 of the tiny encoder's 2 (hidden_states[0] is the embedding layer), mean-pooled, normalised.
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    with torch.no_grad():
        enc = tokenizer([TEXTS[1]], return_tensors="pt", truncation=True, max_length=128)
        hidden = model(**enc, output_hidden_states=True).hidden_states[1]
    expected = torch.nn.functional.normalize(hidden.mean(dim=1), dim=-1)[0].tolist()
    assert middle[1] == pytest.approx(expected, abs=1e-5) and middle[1] != pytest.approx(last[1], abs=1e-3)

    backend("onnx")
    onnx_last, onnx_middle = runtime.embed_with_middle(path, TEXTS)
    loaded = runtime.encoder(path, "middle_embedder")
    assert loaded.meta["backend"] == "onnx" and loaded.model.file.name == "middle_embedder.onnx"
    for mine, theirs in zip([*onnx_last, *onnx_middle], [*last, *middle], strict=True):
        assert mine == pytest.approx(theirs, abs=1e-4)
    backend("onnx", int8=("embedder",))  # the middle-layer graph runs at the embedder's precision
    assert runtime.encoder(path, "middle_embedder").model.file.name == "middle_embedder.int8.onnx"


def test_the_export_is_reused_and_redone_when_the_model_changes(backend, tiny_classifier_dir, tmp_path):
    model_dir = shutil.copytree(tiny_classifier_dir, tmp_path / "model")
    backend("onnx")
    first = runtime.classify(str(model_dir), TEXTS)
    graph = runtime.encoder(str(model_dir), "classifier").model.file
    exported_at = graph.stat().st_mtime_ns

    runtime.cache.clear()  # a new process: the export on disk is used as it is
    assert runtime.classify(str(model_dir), TEXTS) == first
    assert graph.stat().st_mtime_ns == exported_at

    save_with_head(tiny_classifier_dir, model_dir, num_labels=3, seed=7, redraw_std=0.12)  # retrained in place
    backend("torch")
    expected = runtime.classify(str(model_dir), TEXTS)
    backend("onnx")
    changed = runtime.classify(str(model_dir), TEXTS)
    assert graph.stat().st_mtime_ns > exported_at
    assert max(abs(a - b) for new, old in zip(scores(changed), scores(first), strict=True)
               for a, b in zip(new, old, strict=True)) > 0.05
    for mine, theirs in zip(scores(changed), scores(expected), strict=True):
        assert mine == pytest.approx(theirs, abs=1e-4)


def test_a_broken_export_is_made_again(backend, tiny_classifier_dir):
    backend("onnx")
    expected = runtime.classify(tiny_classifier_dir, TEXTS)
    graph = runtime.encoder(tiny_classifier_dir, "classifier").model.file
    graph.write_bytes(b"half an onnx file")  # a process killed mid-write of an older version, a full disk
    backend("onnx")
    assert runtime.classify(tiny_classifier_dir, TEXTS) == expected
    assert graph.stat().st_size > 1000


def test_onnx_int8_quantises_the_matmuls_and_stays_close_to_fp32(backend, tiny_classifier_dir):
    import onnx

    backend("torch")
    fp32 = runtime.classify(tiny_classifier_dir, TEXTS)
    backend("onnx", int8=("classifier",))
    int8 = runtime.classify(tiny_classifier_dir, TEXTS)

    loaded = runtime.encoder(tiny_classifier_dir, "classifier")
    assert loaded.meta["int8"] is True and loaded.model.file.name == "classifier.int8.onnx"
    ops = {node.op_type for node in onnx.load(loaded.model.file).graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops
    # Weights and activations rounded to 8 bits move this 32-wide model's probabilities by about 0.01 (measured
    # 0.0095 at most on these texts; torch's dynamic int8 moves them 0.031). No text here is near a tie.
    assert [row["label"] for row in int8] == [row["label"] for row in fp32]
    for mine, theirs in zip(scores(int8), scores(fp32), strict=True):
        assert mine == pytest.approx(theirs, abs=0.02)


def test_other_devices_keep_the_torch_path(backend, tiny_classifier_dir):
    import torch

    backend("onnx", int8=("classifier",))
    # No GPU here: the meta device stands in for one (anything but the CPU takes the same branch).
    loaded = runtime._load_encoder(tiny_classifier_dir, "classifier", torch.device("meta"))
    assert isinstance(loaded.model, torch.nn.Module) and "backend" not in loaded.meta
    assert not onnx_serving.export_dir(tiny_classifier_dir).exists()


def test_a_model_that_cannot_be_exported_is_served_by_torch(backend, tiny_classifier_dir, monkeypatch, caplog):
    backend("torch")
    expected = runtime.classify(tiny_classifier_dir, TEXTS)

    def untraceable(path, kind, target):
        raise RuntimeError("this architecture does not trace")

    monkeypatch.setattr(onnx_serving, "_export", untraceable)
    backend("onnx")
    assert runtime.classify(tiny_classifier_dir, TEXTS) == expected
    assert "backend" not in runtime.encoder(tiny_classifier_dir, "classifier").meta
    assert "serving it with torch" in caplog.text and "does not trace" in caplog.text


@pytest.mark.realmodel
def test_packaged_minilm_predicts_the_same_through_onnx(backend, tmp_path):
    from mlcore import specs

    minilm = specs.resolve("package:minilm")
    classifier = save_with_head(minilm, tmp_path / "minilm-classifier", num_labels=3, seed=3)
    sentences = [
        "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007.",
        "The company's net sales fell by 5% and it warned of further job cuts.",
        "The annual general meeting will be held in Helsinki on 15 March.",
        "Shares of the lender jumped after it beat forecasts.",
    ]
    backend("torch")
    expected, vectors = runtime.classify(classifier, sentences), runtime.embed(minilm, sentences)
    backend("onnx")
    got, onnx_vectors = runtime.classify(classifier, sentences), runtime.embed(minilm, sentences)
    assert [row["label"] for row in got] == [row["label"] for row in expected]
    for mine, theirs in zip(scores(got), scores(expected), strict=True):
        assert mine == pytest.approx(theirs, abs=1e-4)
    for mine, theirs in zip(onnx_vectors, vectors, strict=True):
        assert sum(a * b for a, b in zip(mine, theirs, strict=True)) > 0.9999

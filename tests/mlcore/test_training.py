import json

import pytest
import torch

from mlcore.training import Callbacks, TrainingCancelled, train_encoder

ROWS = [{"text": f"{w} results in quarter {i}", "label": lab}
        for i in range(12) for w, lab in (("great", "positive"), ("awful", "negative"), ("plain", "neutral"))]
TRAIN, VAL = ROWS[:30], ROWS[30:]


def run(tmp_path, encoder, train=TRAIN, **params):
    return train_encoder(base_path=str(encoder), kind="classifier", train=train, validation=VAL, labels=None,
                         params={"epochs": 3, "batch_size": 8, "learning_rate": 1e-3, **params}, work_dir=tmp_path)


def weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_training_is_deterministic_for_a_seed(tmp_path, tiny_encoder_dir):
    a = run(tmp_path / "a", tiny_encoder_dir, seed=7)
    b = run(tmp_path / "b", tiny_encoder_dir, seed=7)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    wa, wb = weights(a.best_dir), weights(b.best_dir)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_different_seeds_train_differently(tmp_path, tiny_encoder_dir):
    a = run(tmp_path / "a", tiny_encoder_dir, seed=1)
    b = run(tmp_path / "b", tiny_encoder_dir, seed=2)
    assert [h["train_loss"] for h in a.history] != [h["train_loss"] for h in b.history]


def test_the_best_epoch_is_kept_with_labels_and_history(tmp_path, tiny_encoder_dir):
    result = run(tmp_path, tiny_encoder_dir)
    sidecar = json.loads((result.best_dir / "parlance.json").read_text())
    assert sidecar["labels"] == ["negative", "neutral", "positive"]
    assert 1 <= sidecar["best_epoch"] <= 3
    best = result.history[sidecar["best_epoch"] - 1]
    assert result.metrics["macro_f1"] == best["val_macro_f1"]
    assert json.loads((tmp_path / "history.json").read_text()) == result.history


def test_early_stopping_ends_when_validation_stops_improving(tmp_path, tiny_encoder_dir):
    # A learning rate of zero never improves after the first epoch.
    result = run(tmp_path, tiny_encoder_dir, epochs=10, patience=2, learning_rate=0.0, warmup_ratio=0.0)
    assert result.stopped_early
    assert result.epochs_run == 3


def test_training_resumes_from_the_last_checkpoint(tmp_path, tiny_encoder_dir):
    full = run(tmp_path / "full", tiny_encoder_dir, epochs=3, seed=5)

    # Stop after the first epoch's checkpoint, as a killed worker would.
    class Killed(Exception):
        pass

    def die(event):
        raise Killed()

    with pytest.raises(Killed):
        train_encoder(base_path=str(tiny_encoder_dir), kind="classifier", train=TRAIN, validation=VAL, labels=None,
                      params={"epochs": 3, "batch_size": 8, "learning_rate": 1e-3, "seed": 5},
                      work_dir=tmp_path / "resumed", callbacks=Callbacks(on_epoch=die))
    assert (tmp_path / "resumed" / "checkpoint" / "state.pt").exists()
    resumed = run(tmp_path / "resumed", tiny_encoder_dir, epochs=3, seed=5)
    assert resumed.resumed_from_epoch == 1
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert [round(h["train_loss"], 5) for h in resumed.history] == [round(h["train_loss"], 5) for h in full.history]


def test_cancel_stops_training(tmp_path, tiny_encoder_dir):
    with pytest.raises(TrainingCancelled):
        train_encoder(base_path=str(tiny_encoder_dir), kind="classifier", train=TRAIN, validation=VAL, labels=None,
                      params={"epochs": 3}, work_dir=tmp_path, callbacks=Callbacks(should_cancel=lambda: True))


def test_regression_reports_qwk_and_restores_the_target_scale(tmp_path, tiny_encoder_dir):
    rows = [{"text": f"essay {'long ' * (i % 6)} number {i}", "target": float(i % 6 + 1)} for i in range(48)]
    result = train_encoder(base_path=str(tiny_encoder_dir), kind="regressor", train=rows[:40], validation=rows[40:],
                           labels=None, params={"epochs": 2, "batch_size": 8, "learning_rate": 1e-3},
                           work_dir=tmp_path)
    assert set(result.metrics) >= {"qwk", "rmse", "pearson"}
    sidecar = json.loads((result.best_dir / "parlance.json").read_text())
    assert sidecar["target_mean"] == pytest.approx(sum(r["target"] for r in rows[:40]) / 40)


def test_a_rows_confidence_makes_its_label_soft(tmp_path, tiny_encoder_dir):
    """Cross-entropy against a soft target can't go below the target's entropy; the hard labels go well below it."""
    import math

    soft_rows = [{**row, "confidence": 0.6} for row in TRAIN]
    floor = -(0.6 * math.log(0.6) + 2 * 0.2 * math.log(0.2))  # 0.95
    params = {"epochs": 8, "batch_size": 8, "learning_rate": 5e-3, "patience": 8}
    hard = train_encoder(base_path=str(tiny_encoder_dir), kind="classifier", train=TRAIN, validation=VAL,
                         labels=None, params=params, work_dir=tmp_path / "hard")
    soft = train_encoder(base_path=str(tiny_encoder_dir), kind="classifier", train=soft_rows, validation=VAL,
                         labels=None, params=params, work_dir=tmp_path / "soft")
    assert hard.history[-1]["train_loss"] < floor - 0.05
    assert soft.history[-1]["train_loss"] >= floor - 1e-3
    assert soft.history[-1]["val_accuracy"] == 1.0  # the label still wins: a soft label is not a different label


def test_a_confidence_of_one_is_the_hard_label(tmp_path, tiny_encoder_dir):
    a = run(tmp_path / "a", tiny_encoder_dir, seed=7)
    b = run(tmp_path / "b", tiny_encoder_dir, train=[{**r, "confidence": 1.0} for r in TRAIN], seed=7)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]


@pytest.mark.parametrize("confidence", [0.0, 1.5, -0.2])
def test_a_confidence_outside_zero_to_one_is_refused(tmp_path, tiny_encoder_dir, confidence):
    with pytest.raises(ValueError, match="confidence"):
        train_encoder(base_path=str(tiny_encoder_dir), kind="classifier",
                      train=[{**TRAIN[0], "confidence": confidence}, *TRAIN[1:]], validation=VAL, labels=None,
                      params={"epochs": 1}, work_dir=tmp_path)


def test_layer_decay_gives_each_depth_its_learning_rate(tiny_encoder_dir):
    """Head and pooler at the peak rate, each of the 2 layers below a factor lower, the embeddings lowest."""
    from transformers import AutoModelForSequenceClassification

    from mlcore.training import parameter_groups

    model = AutoModelForSequenceClassification.from_pretrained(tiny_encoder_dir, num_labels=3)
    groups = parameter_groups(model, learning_rate=1e-3, weight_decay=0.01, layer_decay=0.5)
    rate = {id(w): g["lr"] for g in groups for w in g["params"]}
    decay = {id(w): g["weight_decay"] for g in groups for w in g["params"]}
    named = dict(model.named_parameters())
    assert len(rate) == len(named)  # every parameter in exactly one group
    assert rate[id(named["classifier.weight"])] == rate[id(named["bert.pooler.dense.weight"])] == 1e-3
    assert rate[id(named["bert.encoder.layer.1.output.dense.weight"])] == pytest.approx(5e-4)
    assert rate[id(named["bert.encoder.layer.0.attention.self.query.weight"])] == pytest.approx(2.5e-4)
    assert rate[id(named["bert.embeddings.word_embeddings.weight"])] == pytest.approx(1.25e-4)
    assert decay[id(named["bert.encoder.layer.0.output.LayerNorm.weight"])] == 0.0
    assert decay[id(named["bert.encoder.layer.0.output.dense.bias"])] == 0.0
    assert decay[id(named["bert.encoder.layer.0.output.dense.weight"])] == 0.01


def test_without_layer_decay_the_two_groups_of_old_checkpoints_stay(tiny_encoder_dir):
    from transformers import AutoModelForSequenceClassification

    from mlcore.training import parameter_groups

    model = AutoModelForSequenceClassification.from_pretrained(tiny_encoder_dir, num_labels=3)
    groups = parameter_groups(model, learning_rate=1e-3, weight_decay=0.01)
    assert [g["weight_decay"] for g in groups] == [0.01, 0.0] and all("lr" not in g for g in groups)


@pytest.mark.parametrize("layer_decay", [0.0, 1.2])
def test_a_layer_decay_outside_zero_to_one_is_refused(tmp_path, tiny_encoder_dir, layer_decay):
    with pytest.raises(ValueError, match="layer_decay"):
        run(tmp_path, tiny_encoder_dir, layer_decay=layer_decay)


def test_layer_decay_moves_the_lower_layers_less(tmp_path, tiny_encoder_dir):
    """Same seed and data: with a strong decay the word embeddings barely move; without it they do."""
    before = weights(tiny_encoder_dir)["embeddings.word_embeddings.weight"]  # saved as a bare BertModel

    def moved(result):
        return float((weights(result.best_dir)["bert.embeddings.word_embeddings.weight"] - before).abs().sum())

    plain = moved(run(tmp_path / "plain", tiny_encoder_dir, epochs=1, seed=3))
    decayed = moved(run(tmp_path / "decayed", tiny_encoder_dir, epochs=1, seed=3, layer_decay=0.1))
    assert plain > 0 and decayed < 0.01 * plain


def test_balanced_class_weights_make_every_label_weigh_the_same_in_the_loss():
    from mlcore.training import class_weights

    weights_ = class_weights([0, 0, 0, 0, 0, 0, 1, 1, 2], 4, "balanced")  # label 3 has no rows

    assert weights_.tolist() == pytest.approx([9 / (4 * 6), 9 / (4 * 2), 9 / (4 * 1), 1.0])
    assert 6 * weights_[0] == pytest.approx(2 * weights_[1]) == pytest.approx(1 * weights_[2])
    assert class_weights([0, 1], 2, "none") is None


def test_class_weighting_changes_the_training_loss_on_skewed_labels(tmp_path, tiny_encoder_dir):
    skewed = [r for r in TRAIN if r["label"] != "negative"] + [r for r in TRAIN if r["label"] == "negative"][:2]
    plain = run(tmp_path / "plain", tiny_encoder_dir, train=skewed, epochs=1, seed=5)
    balanced = run(tmp_path / "balanced", tiny_encoder_dir, train=skewed, epochs=1, seed=5,
                   class_weighting="balanced")
    even = TRAIN  # 10 rows a label: balanced weights are all 1, the loss is the plain one
    plain_even = run(tmp_path / "plain-even", tiny_encoder_dir, train=even, epochs=1, seed=5)
    balanced_even = run(tmp_path / "balanced-even", tiny_encoder_dir, train=even, epochs=1, seed=5,
                        class_weighting="balanced")

    assert balanced.history[0]["train_loss"] != pytest.approx(plain.history[0]["train_loss"], abs=1e-4)
    assert balanced_even.history[0]["train_loss"] == pytest.approx(plain_even.history[0]["train_loss"], abs=1e-6)


def test_an_unknown_class_weighting_is_refused(tmp_path, tiny_encoder_dir):
    with pytest.raises(ValueError, match="class_weighting"):
        run(tmp_path, tiny_encoder_dir, epochs=1, class_weighting="inverse")

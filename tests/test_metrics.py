"""Metrics: hand-computed values, streaming over batches, absent classes, NumPy agreement."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from flexplat.engine.metrics import (
    ForegroundDice,
    ForegroundIoU,
    ObjectDice,
    ObjectIoU,
    SeedDice,
    build_metrics,
    confusion_matrix,
    metric_name,
    scores_from_confusion,
)


def one_hot(labels, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype="float32")[np.asarray(labels)]


# Truth [[0, 1], [2, 2]]; softmax prediction per pixel (p0, p1, p2), argmax [[0, 1], [2, 0]]
TRUTH = one_hot([[[0, 1], [2, 2]]], 3)
PRED = np.array([[[[0.8, 0.1, 0.1], [0.2, 0.7, 0.1]], [[0.1, 0.2, 0.7], [0.6, 0.2, 0.2]]]], dtype="float32")


def results(metrics, batches) -> dict[str, float]:
    for metric in metrics:
        for y_true, y_pred in batches:
            metric.update_state(y_true, y_pred)
    return {m.name: float(m.result()) for m in metrics}


def test_hand_computed_single_image():
    got = results(build_metrics(["background", "a", "b"]), [(TRUTH, PRED)])
    # class a: I=1, T=1, P=1 -> Dice 1, IoU 1; class b: I=1, T=2, P=1 -> Dice 2/3, IoU 1/2
    assert got["dice_a"] == pytest.approx(1.0)
    assert got["dice_b"] == pytest.approx(2 / 3)
    assert got["dice_mean"] == pytest.approx(5 / 6)
    assert got["iou_mean"] == pytest.approx(3 / 4)
    # cell: truth has 3 cell pixels, argmax predicts 2, both cell at 2 -> Dice 4/5, IoU 2/3
    assert got["object_dice"] == pytest.approx(4 / 5)
    assert got["object_iou"] == pytest.approx(2 / 3)
    # seed: 2 * (.8 + .7 + .7 + .2) / (4 + 4) = 0.6, the mean true-class probability
    assert got["seed_dice"] == pytest.approx(0.6)
    assert list(got) == ["dice_mean", "iou_mean", "object_dice", "object_iou", "seed_dice", "dice_a", "dice_b"]


def test_cell_metrics_ignore_the_cell_type():
    # every cell pixel predicted as the wrong type: type Dice 0, cell Dice 1
    truth = one_hot([[[1, 1], [0, 0]]], 3)
    pred = one_hot([[[2, 2], [0, 0]]], 3)
    got = results(build_metrics(["bg", "a", "b"]), [(truth, pred)])
    assert got["object_dice"] == 1.0 and got["object_iou"] == 1.0
    assert got["dice_a"] == 0.0 and got["dice_b"] == 0.0 and got["dice_mean"] == 0.0


def test_streaming_accumulates_counts_not_batch_ratios():
    # batch 1: 4 cell pixels, all found -> Dice 1, IoU 1
    # batch 2: 1 cell pixel, missed     -> Dice 0, IoU 0   (mean of batch values: 0.5 and 0.5)
    # epoch: I = 4, T = 5, P = 4 -> Dice 8/9, IoU 4/5
    b1 = (one_hot([[[1, 1], [1, 1]]], 2), one_hot([[[1, 1], [1, 1]]], 2))
    b2 = (one_hot([[[1, 0], [0, 0]]], 2), one_hot([[[0, 0], [0, 0]]], 2))
    dice, iou = ForegroundDice(2, class_id=1), ForegroundIoU(2)
    per_batch = []
    for batch in (b1, b2):
        single = ForegroundDice(2, class_id=1)
        single.update_state(*batch)
        per_batch.append(float(single.result()))
        dice.update_state(*batch)
        iou.update_state(*batch)
    assert per_batch == [1.0, 0.0]
    assert float(dice.result()) == pytest.approx(8 / 9)
    assert float(iou.result()) == pytest.approx(4 / 5)
    assert float(dice.result()) != pytest.approx(np.mean(per_batch))
    dice.reset_state()
    dice.update_state(*b2)
    assert float(dice.result()) == 0.0


def test_absent_class_is_nan_and_left_out_of_the_mean():
    # class b never occurs in truth or prediction; class a: I=1, T=2, P=1 -> 2/3
    truth = one_hot([[[0, 1], [1, 0]]], 3)
    pred = one_hot([[[0, 1], [0, 0]]], 3)
    got = results(build_metrics(["bg", "a", "b"]), [(truth, pred)])
    assert math.isnan(got["dice_b"])
    assert got["dice_a"] == pytest.approx(2 / 3)
    assert got["dice_mean"] == pytest.approx(2 / 3)
    assert got["iou_mean"] == pytest.approx(1 / 2)


def test_class_only_predicted_scores_zero_and_counts():
    truth = one_hot([[[0, 1], [1, 0]]], 3)
    pred = one_hot([[[2, 1], [1, 0]]], 3)  # b predicted once, never true
    got = results(build_metrics(["bg", "a", "b"]), [(truth, pred)])
    assert got["dice_a"] == 1.0 and got["dice_b"] == 0.0
    assert got["dice_mean"] == pytest.approx(0.5)


def test_no_foreground_anywhere_gives_nan():
    bg = one_hot([[[0, 0], [0, 0]]], 3)
    got = results(build_metrics(["bg", "a", "b"]), [(bg, bg)])
    assert all(math.isnan(got[k]) for k in ("dice_mean", "iou_mean", "object_dice", "object_iou", "dice_a"))
    assert got["seed_dice"] == 1.0


def test_seed_dice_is_inflated_by_background():
    # 10x10 image, 2 cell pixels; the model predicts "all background" with certainty
    labels = np.zeros((1, 10, 10), dtype=int)
    labels[0, 4, 4:6] = 1
    truth = one_hot(labels, 2)
    pred = one_hot(np.zeros_like(labels), 2)
    got = results(build_metrics(["bg", "cell"]), [(truth, pred)])
    assert got["seed_dice"] == pytest.approx(0.98)  # 2 * 98 / (100 + 100)
    assert got["dice_mean"] == 0.0 and got["object_dice"] == 0.0


def test_seed_dice_is_a_mean_over_images():
    # image 1: true-class probabilities all 1 -> 1.0; image 2: all .5 -> .5; mean .75 however batched
    truth = one_hot([[[0, 1], [1, 0]], [[0, 1], [1, 0]]], 2)
    pred = np.concatenate([truth[:1], np.full((1, 2, 2, 2), 0.5, dtype="float32")])
    together, apart = SeedDice(2), SeedDice(2)
    together.update_state(truth, pred)
    apart.update_state(truth[:1], pred[:1])
    apart.update_state(truth[1:], pred[1:])
    assert float(together.result()) == pytest.approx(0.75)
    assert float(apart.result()) == pytest.approx(0.75)


def test_single_sigmoid_channel():
    truth = np.array([0, 1, 1, 0], dtype="float32").reshape(1, 2, 2, 1)
    prob = np.array([0.2, 0.9, 0.3, 0.6], dtype="float32").reshape(1, 2, 2, 1)  # hard: 0, 1, 0, 1
    dice, cell = ForegroundDice(2), ObjectIoU(2)
    dice.update_state(truth, prob)
    cell.update_state(truth, prob)
    assert float(dice.result()) == pytest.approx(0.5)  # I=1, T=2, P=2
    assert float(cell.result()) == pytest.approx(1 / 3)


def test_keras_metrics_agree_with_numpy_confusion_scores():
    rng = np.random.default_rng(1)
    num_classes = 4
    truth_idx = rng.choice(num_classes, size=(6, 8, 8), p=[0.7, 0.2, 0.1, 0.0])  # class 3 never true
    logits = rng.normal(size=(6, 8, 8, num_classes)) + 2.0 * np.eye(num_classes)[truth_idx]
    logits[..., 3] -= 10.0  # and never predicted
    probs = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype("float32")
    metrics = build_metrics(["bg", "a", "b", "c"])
    got = results(metrics, [(one_hot(truth_idx[i : i + 2], num_classes), probs[i : i + 2]) for i in (0, 2, 4)])
    scores = scores_from_confusion(confusion_matrix(truth_idx, probs.argmax(-1), num_classes))
    for key in ("dice_mean", "iou_mean", "object_dice", "object_iou"):
        assert got[key] == pytest.approx(scores[key], rel=1e-6), key
    assert got["dice_a"] == pytest.approx(scores["dice"][1], rel=1e-6)
    assert got["dice_b"] == pytest.approx(scores["dice"][2], rel=1e-6)
    assert math.isnan(got["dice_c"]) and math.isnan(scores["dice"][3])


def test_confusion_matrix_and_scores_by_hand():
    true_idx = np.array([[0, 1], [2, 2]])
    pred_idx = np.array([[0, 1], [2, 0]])
    cm = confusion_matrix(true_idx, pred_idx, 3)
    assert cm.tolist() == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    scores = scores_from_confusion(cm)
    assert scores["dice"] == pytest.approx([2 / 3, 1.0, 2 / 3])
    assert scores["iou"] == pytest.approx([1 / 2, 1.0, 1 / 2])
    assert scores["dice_mean"] == pytest.approx(5 / 6)
    assert scores["object_dice"] == pytest.approx(4 / 5)
    assert scores["object_iou"] == pytest.approx(2 / 3)
    assert scores["pixel_accuracy"] == pytest.approx(3 / 4)
    assert scores["support"] == [1, 1, 2] and scores["predicted"] == [2, 1, 1]


def test_confusion_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match="differ in shape"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 2)
    with pytest.raises(ValueError, match="0..1"):
        confusion_matrix(np.array([0, 2]), np.array([0, 1]), 2)


def test_names_and_serialization():
    assert metric_name("dice", "Band cell (immature)") == "dice_band_cell_immature"
    with pytest.raises(ValueError, match="clashing"):
        build_metrics(["bg", "a b", "a-b"])
    for metric in (ForegroundDice(3, class_id=2, name="dice_x"), ObjectDice(3), SeedDice(3)):
        clone = keras.metrics.deserialize(keras.metrics.serialize(metric))
        assert type(clone) is type(metric) and clone.get_config() == metric.get_config()


def test_metrics_in_compile_and_fit_log_their_names():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Conv2D(3, 1, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=build_metrics(["bg", "a", "b"]))
    x = np.random.default_rng(0).uniform(size=(4, 4, 4, 3)).astype("float32")
    y = one_hot(np.argmax(x, axis=-1), 3)
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0, validation_data=(x, y))
    for name in ("dice_mean", "iou_mean", "object_dice", "object_iou", "seed_dice", "dice_a", "val_dice_b"):
        assert name in history.history, name
    # the logged epoch value is the whole-epoch score (recomputed here by NumPy on the same data)
    evaluated = model.evaluate(x, y, batch_size=2, verbose=0, return_dict=True)
    scores = scores_from_confusion(confusion_matrix(y.argmax(-1), model.predict(x, verbose=0).argmax(-1), 3))
    assert evaluated["object_dice"] == pytest.approx(scores["object_dice"], rel=1e-6)

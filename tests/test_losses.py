"""Losses: hand-computed values on a 1x2x2 image with 3 classes, options and errors."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from flexplat.engine.losses import get_loss
from flexplat.errors import ConfigError
from flexplat.schema import LOSSES, loss_options_schema

# Truth (class per pixel)      Softmax prediction (p0, p1, p2) per pixel
#   [[0, 1],                     [[(.8, .1, .1), (.2, .7, .1)],
#    [2, 2]]                      [(.1, .2, .7), (.6, .2, .2)]]
TRUTH = np.eye(3, dtype="float32")[[[0, 1], [2, 2]]][None]
PRED = np.array([[[[0.8, 0.1, 0.1], [0.2, 0.7, 0.1]], [[0.1, 0.2, 0.7], [0.6, 0.2, 0.2]]]], dtype="float32")
# probability given to the true class, per pixel: .8, .7, .7, .2
LN = {p: -math.log(p) for p in (0.8, 0.7, 0.2)}


def value(name: str, y_true=TRUTH, y_pred=PRED, num_classes: int = 3, **options) -> float:
    return float(get_loss(name, num_classes, **options)(y_true, y_pred))


def test_categorical_crossentropy_by_hand():
    expected = (LN[0.8] + LN[0.7] + LN[0.7] + LN[0.2]) / 4  # 0.636483
    assert value("categorical_crossentropy") == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx(0.636483, abs=1e-6)


def test_crossentropy_class_weights_weight_each_pixel_by_its_true_class():
    # weights [1, 2, .5]: pixels of class 0, 1, 2, 2 weigh 1, 2, .5, .5
    expected = (1 * LN[0.8] + 2 * LN[0.7] + 0.5 * LN[0.7] + 0.5 * LN[0.2]) / 4
    got = value("categorical_crossentropy", class_weights=[1, 2, 0.5])
    assert got == pytest.approx(expected, rel=1e-5)


def test_dice_is_over_foreground_classes_only():
    # class 1: sum t*p = .7, sum t = 1, sum p = .1+.7+.2+.2 = 1.2 -> 1.4/2.2
    # class 2: sum t*p = .7+.2 = .9, sum t = 2, sum p = .1+.1+.7+.2 = 1.1 -> 1.8/3.1
    d1, d2 = 1.4 / 2.2, 1.8 / 3.1
    assert value("dice", smooth=0.0) == pytest.approx(1 - (d1 + d2) / 2, rel=1e-5)  # 0.391496
    # smooth 1: 2.4/3.2 and 2.8/4.1
    assert value("dice") == pytest.approx(1 - (2.4 / 3.2 + 2.8 / 4.1) / 2, rel=1e-5)
    # the background weight is unused; foreground weights 3 and 1 make a weighted mean
    assert value("dice", smooth=0.0, class_weights=[100, 3, 1]) == pytest.approx(1 - (3 * d1 + d2) / 4, rel=1e-5)
    # a wrong background prediction does not change the Dice loss (background excluded)
    pred = PRED.copy()
    pred[0, 0, 0] = [0.5, 0.1, 0.1]  # not a distribution any more, but only p0 moved
    assert value("dice", y_pred=pred, smooth=0.0) == pytest.approx(1 - (d1 + d2) / 2, rel=1e-5)


def test_ce_dice_adds_weighted_dice():
    ce = (LN[0.8] + 2 * LN[0.7] + LN[0.2]) / 4
    dice = 1 - (1.4 / 2.2 + 1.8 / 3.1) / 2
    got = value("ce_dice", smooth=0.0, dice_weight=0.5)
    assert got == pytest.approx(ce + 0.5 * dice, rel=1e-5)


def test_focal_by_hand():
    # per pixel (1 - p)^2 * -ln p with p the true-class probability .8, .7, .7, .2
    expected = (0.2**2 * LN[0.8] + 2 * 0.3**2 * LN[0.7] + 0.8**2 * LN[0.2]) / 4  # 0.275792
    assert value("focal", gamma=2.0) == pytest.approx(expected, rel=1e-5)
    assert value("focal", gamma=0.0) == pytest.approx(value("categorical_crossentropy"), rel=1e-6)
    # the badly predicted pixel (p=.2) dominates: easy pixels are down-weighted
    assert 0.8**2 * LN[0.2] / 4 > 0.9 * expected


def test_perfect_prediction_gives_zero_loss():
    for name in LOSSES:
        assert value(name, y_pred=TRUTH) == pytest.approx(0.0, abs=1e-5), name


def test_one_value_per_image_mean_over_batch():
    loss = get_loss("categorical_crossentropy", 3)
    perfect = TRUTH
    batch_true = np.concatenate([TRUTH, TRUTH])
    batch_pred = np.concatenate([PRED, perfect])
    per_image = np.asarray(loss.call(batch_true, batch_pred))
    assert per_image.shape == (2,)
    assert per_image[0] == pytest.approx(0.636483, abs=1e-5)
    assert per_image[1] == pytest.approx(0.0, abs=1e-5)
    assert float(loss(batch_true, batch_pred)) == pytest.approx(0.636483 / 2, abs=1e-5)


def test_single_sigmoid_channel_is_read_as_background_and_foreground():
    # foreground probabilities .1, .7, .2, .9 for truth 0, 1, 0, 1
    fg = np.array([0.1, 0.7, 0.2, 0.9], dtype="float32").reshape(1, 2, 2, 1)
    truth = np.array([0, 1, 0, 1], dtype="float32").reshape(1, 2, 2, 1)
    two_pred = np.concatenate([1 - fg, fg], axis=-1)
    two_true = np.concatenate([1 - truth, truth], axis=-1)
    for name in LOSSES:
        single = value(name, truth, fg, num_classes=2)
        assert single == pytest.approx(value(name, two_true, two_pred, num_classes=2), rel=1e-5), name
    expected_ce = (-math.log(0.9) - math.log(0.7) - math.log(0.8) - math.log(0.9)) / 4
    assert value("categorical_crossentropy", truth, fg, num_classes=2) == pytest.approx(expected_ce, rel=1e-5)


def test_loss_trains_a_tiny_model():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(3, 1, activation="softmax")])
    x = np.random.default_rng(0).uniform(size=(4, 8, 8, 3)).astype("float32")
    y = np.eye(3, dtype="float32")[np.argmax(x, axis=-1)]  # learnable: class = brightest channel
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=get_loss("ce_dice", 3, class_weights=[1, 2, 2]))
    history = model.fit(x, y, epochs=15, batch_size=2, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_schema_per_loss():
    assert set(loss_options_schema("categorical_crossentropy")) == {"class_weights"}
    assert set(loss_options_schema("dice")) == {"class_weights", "smooth"}
    assert set(loss_options_schema("ce_dice")) == {"class_weights", "smooth", "dice_weight"}
    assert set(loss_options_schema("focal")) == {"class_weights", "gamma"}
    assert loss_options_schema("focal")["gamma"].default == 2.0


def test_unknown_loss_names_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown loss 'dise'.*categorical_crossentropy, dice, ce_dice, focal"):
        loss_options_schema("dise")
    with pytest.raises(ConfigError, match="unknown loss"):
        get_loss("iou", 3)


def test_option_errors():
    with pytest.raises(ConfigError, match=r"class_weights: has 2 values but there are 3 classes"):
        get_loss("dice", 3, class_weights=[1, 2])
    with pytest.raises(ConfigError, match="class_weights"):
        get_loss("dice", 3, class_weights=[1, -1, 2])
    with pytest.raises(ConfigError, match=r"train.loss_options.gamma: unknown key"):
        get_loss("dice", 3, gamma=2.0)
    with pytest.raises(ConfigError, match="gamma"):
        get_loss("focal", 3, gamma=-1.0)


def test_schema_does_not_import_tensorflow():
    code = (
        "import sys; from flexplat.schema import loss_options_schema; loss_options_schema('focal'); "
        "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules, 'TF imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

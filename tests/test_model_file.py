"""Fast loading of model.keras (flexplat.engine.model_file) against Keras's own loader."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

from flexplat.engine.model_file import fill_layers, load_fast, load_saved_model, read_weight_arrays, zero_initializers

keras = pytest.importorskip("keras")


def small_unet_like():
    """Conv, batch norm, pooling, transposed conv, concatenate: the layer kinds FlexUNet uses."""
    inputs = keras.Input((16, 16, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", kernel_initializer="he_normal")(inputs)
    a = keras.layers.BatchNormalization()(a)
    b = keras.layers.MaxPooling2D()(a)
    b = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(b)
    b = keras.layers.Conv2DTranspose(4, 2, strides=2)(b)
    x = keras.layers.Concatenate()([a, b])
    outputs = keras.layers.Conv2D(3, 1, activation="softmax", bias_initializer="ones")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(size=w.shape).astype("float32") + 1.5 for w in model.get_weights()])
    return model


def assert_same_model(fast, reference):
    assert [w.path for w in fast.weights] == [w.path for w in reference.weights]
    for a, b in zip(fast.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(4).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(fast(x, training=False), reference(x, training=False), rtol=1e-6)


def test_zero_initializers_replaces_every_initializer():
    config = {"a_initializer": {"class_name": "HeNormal"}, "layers": [{"bias_initializer": {"class_name": "Ones"}}]}
    zeroed = zero_initializers(config)
    assert zeroed["layers"][0]["bias_initializer"]["class_name"] == "Zeros"
    assert zeroed["a_initializer"]["class_name"] == "Zeros"
    assert config["a_initializer"]["class_name"] == "HeNormal"  # the input is not modified


def test_weight_arrays_are_read_from_inside_the_archive(tmp_path):
    path = tmp_path / "m.keras"
    model = small_unet_like()
    model.save(path)
    arrays = read_weight_arrays(path)
    extracted = tmp_path / "w.h5"
    with zipfile.ZipFile(path) as archive:
        extracted.write_bytes(archive.read("model.weights.h5"))
    expected = {}
    with h5py.File(extracted, "r") as store:
        store.visititems(lambda key, item: expected.update({key: item[()]}) if isinstance(item, h5py.Dataset) else None)
    assert sorted(arrays) == sorted(expected) and len(arrays) == len(model.weights) == 12
    for key, value in expected.items():
        np.testing.assert_array_equal(arrays[key], value)


def test_fast_path_restores_every_weight(tmp_path):
    path = tmp_path / "m.keras"
    small_unet_like().save(path)
    reference = keras.models.load_model(path, compile=False, safe_mode=True)
    assert_same_model(load_fast(path), reference)  # the fast path itself, no fallback


def test_fill_layers_refuses_arrays_that_do_not_match(tmp_path):
    path = tmp_path / "m.keras"
    model = small_unet_like()
    model.save(path)
    arrays = read_weight_arrays(path)
    extra = dict(arrays, **{"layers/conv2d_9/vars/0": np.zeros(3, "float32")})
    with pytest.raises(ValueError, match="arrays used"):
        fill_layers(model, extra)
    missing = {k: v for k, v in arrays.items() if not k.startswith("layers/batch_normalization/")}
    with pytest.raises(ValueError, match="batch_normalization"):
        fill_layers(model, missing)


def test_nested_models_fall_back_to_the_keras_loader(tmp_path):
    inner = small_unet_like()
    inputs = keras.Input((16, 16, 3))
    outer = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inner(inputs)))
    path = tmp_path / "nested.keras"
    outer.save(path)
    with pytest.raises(ValueError):
        load_fast(path)
    assert_same_model(load_saved_model(path), keras.models.load_model(path, compile=False, safe_mode=True))


def test_keras_import_does_not_pull_in_matplotlib_but_matplotlib_still_works():
    pytest.importorskip("matplotlib")  # not a flexplat dependency; Keras imports it when present
    code = (
        "import sys\n"
        "from flexplat.engine.model_file import import_keras\n"
        "import_keras()\n"
        "assert 'tensorflow' in sys.modules and 'matplotlib' not in sys.modules\n"
        "import matplotlib.pyplot\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_a_model_saved_with_its_optimizer_state_loads_on_the_fast_path_without_reading_that_state(tmp_path):
    model = small_unet_like()
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x = np.random.default_rng(0).random((2, *model.input_shape[1:]), dtype=np.float32)
    y = np.eye(model.output_shape[-1], dtype=np.float32)[np.zeros(model.output_shape[1:3], int)][None].repeat(2, 0)
    model.fit(x, y, epochs=1, verbose=0)  # Adam now holds slots: the archive stores them as well
    path = tmp_path / "trained.keras"
    model.save(path)
    with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as member:
        with h5py.File(member, "r") as store:
            assert "optimizer" in store and len(store["optimizer/vars"]) > 0
    arrays = read_weight_arrays(path)
    assert arrays and not any(key.startswith("optimizer/") for key in arrays)
    fast = load_fast(path)  # raises if any model variable is left unfilled
    np.testing.assert_allclose(fast.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_any_size_lifts_the_saved_input_size_of_a_fully_convolutional_model(tmp_path):
    model = small_unet_like()
    path = tmp_path / "model.keras"
    model.save(path)
    height, width = model.input_shape[1:3]
    fixed = load_fast(path)
    assert fixed.input_shape[1:3] == (height, width)
    free = load_fast(path, any_size=True)
    assert free.input_shape[1:3] == (None, None)
    x = np.random.default_rng(1).random((1, height, width, model.input_shape[3]), dtype=np.float32)
    np.testing.assert_allclose(free.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    bigger = np.random.default_rng(2).random((1, 2 * height, 2 * width, model.input_shape[3]), dtype=np.float32)
    assert free.predict(bigger, verbose=0).shape[1:3] == (2 * height, 2 * width)

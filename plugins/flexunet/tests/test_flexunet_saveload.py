"""A saved FlexUNet loads with safe_mode=True in a fresh process that imports only Keras."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
from flexplat_flexunet.presets import MODELS

SPECS = {spec.name: spec for spec in MODELS}

# one fresh process for all cases (importing TensorFlow costs seconds): argv = model, input, output, ...
LOAD_AND_PREDICT = """
import sys
import keras
import numpy as np
args = sys.argv[1:]
for model_path, x_path, y_path in zip(args[0::3], args[1::3], args[2::3]):
    model = keras.models.load_model(model_path, safe_mode=True)
    np.save(y_path, model.predict(np.load(x_path), verbose=0))
assert not any(name.startswith("flexplat") for name in sys.modules), "loading needed a flexplat module"
"""

CASES = [
    # mish activation, batch norm, /255 inside (the small preset's defaults), softmax head
    ("flexunet-small", 3, 4, {"base_filters": 4, "num_layers": 3, "activation": "mish"}),
    # group norm, /255 inside, single-channel input, sigmoid head
    (
        "flexunet",
        1,
        1,
        {"base_filters": 4, "base_kernels": 5, "num_layers": 3, "normalization": "group", "input_normalize": True},
    ),
]


def test_round_trip_in_a_fresh_process(tmp_path):
    import keras

    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(1)
    args, expected = [], []
    for i, (name, channels, classes, options) in enumerate(CASES):
        model = SPECS[name].build((32, 32), channels, classes, **options)
        # shift every weight (normalisation scales, offsets and moving statistics included, variances
        # stay positive) away from its initial value, so only a faithful load reproduces the output
        model.set_weights([w + rng.uniform(0.0, 0.1, size=w.shape).astype(w.dtype) for w in model.get_weights()])
        x = rng.uniform(0, 255, size=(3, 32, 32, channels)).astype("float32")
        expected.append(model.predict(x, verbose=0))
        path = tmp_path / f"model{i}.keras"
        model.save(path)
        with zipfile.ZipFile(path) as archive:
            config = archive.read("config.json").decode()
        assert "Lambda" not in config and "flexplat" not in config, name
        np.save(tmp_path / f"x{i}.npy", x)
        args += [str(path), str(tmp_path / f"x{i}.npy"), str(tmp_path / f"y{i}.npy")]
    subprocess.run([sys.executable, "-c", LOAD_AND_PREDICT, *args], check=True, timeout=300)
    for i, want in enumerate(expected):
        np.testing.assert_array_equal(np.load(tmp_path / f"y{i}.npy"), want)

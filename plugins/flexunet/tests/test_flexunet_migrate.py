"""Migration from the original experiments: every corpus config imports and validates (or fails on its
own broken rgb_map with file:line), the Leukocyte config is the reference network, and the YAML trains.

Reads ../shared/seed-configs when present (never copied into the repository); skips otherwise.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import flexplat_flexunet
import pytest

from flexplat import ConfigError, import_original_config, resolve_config
from flexplat.testing import invoke, plugin_system

SHARED = Path(__file__).resolve().parents[3].parent / "shared"
CORPUS = sorted((SHARED / "seed-configs" / "configs").glob("*.config"))
TINY_CONFIG = SHARED / "seed-weights" / "tiny_train_eval_infer.config"
needs_corpus = pytest.mark.skipif(not CORPUS, reason="../shared/seed-configs is absent")


@pytest.fixture(autouse=True)
def flexunet_system():
    with plugin_system(flexplat_flexunet) as system:
        yield system


def original_keys(path: Path) -> tuple[set[str], str]:
    """Independently of the importer: every ``section.key`` of the file, and the raw rgb_map text."""
    keys, section, rgb_map, in_map = set(), "", "", False
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if in_map and line[:1].isspace() and stripped and not stripped.startswith(";"):
            rgb_map += stripped.rstrip("\\ ")
            continue
        in_map = False
        if stripped.startswith("["):
            section = stripped.strip("[] ")
        elif "=" in stripped and not stripped.startswith((";", "#")):
            key = stripped.split("=", 1)[0].strip()
            keys.add(f"{section}.{key}")
            if key == "rgb_map":
                rgb_map, in_map = stripped.split("=", 1)[1].strip().rstrip("\\ "), True
    return keys, rgb_map


def rgb_map_is_broken(path: Path) -> bool:
    """True when the file's own rgb_map is not a Python literal (the corpus's known defects)."""
    try:
        ast.literal_eval(original_keys(path)[1])
    except (SyntaxError, ValueError):
        return True
    return False


@needs_corpus
def test_every_corpus_config_imports_and_validates(tmp_path):
    imported, refused = 0, []
    for path in CORPUS:
        if rgb_map_is_broken(path):
            with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}:\d+: \[mask\] rgb_map = .*: not a Python"):
                import_original_config(path)
            refused.append(path.name)
            continue
        result = import_original_config(path)
        out = tmp_path / f"{imported}.yaml"
        out.write_text(result.to_yaml())
        config = resolve_config(config_file=out)
        assert config["model"]["name"] == "flexunet"
        every, rgb_map = original_keys(path)
        assert len(config["classes"]) == len(ast.literal_eval(rgb_map))
        used = {key for key, _, _ in result.mapped} | {key for key, _, _ in result.unmapped}
        assert used == every, f"{path.name}: keys neither mapped nor listed: {every - used}"
        imported += 1
    assert imported >= 70 and len(refused) <= 5, (imported, refused)


@needs_corpus
def test_leukocyte_config_gives_the_reference_network(tmp_path):
    source = next(p for p in CORPUS if "Leukocyte__Leukocyte" in p.name)
    out = tmp_path / "leukocyte.yaml"
    result = invoke(["config", "import", str(source), "--out", str(out)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "model.show_summary" in result.output  # the unmapped table
    config = resolve_config(config_file=out)
    assert [c["name"] for c in config["classes"]] == ["background", "baso", "eosi", "lymp", "mono", "neut"]
    assert config["data"]["train"] == {"images": "train/*/images", "masks": "train/*/masks"}
    assert (config["train"]["learning_rate"], config["train"]["clipvalue"]) == (7e-5, 0.4)
    assert config["train"]["callbacks"]["reduce_lr"]["patience"] == 4
    info = invoke(["info", "flexunet"])
    spec = flexplat_flexunet.presets.MODELS[0]
    model = config["model"]
    assert spec.describe(tuple(model["image_size"]), model["channels"], 6, **model["options"])["parameters"] == (
        124_996_934
    )
    assert info.exit_code == 0
    again = invoke(["config", "import", str(source), "--out", str(out)])
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_non_square_kernel_is_refused_with_the_line(tmp_path):
    if not TINY_CONFIG.is_file():
        pytest.skip("../shared/seed-weights is absent")
    text = TINY_CONFIG.read_text().replace("base_kernels   = (3,3)", "base_kernels   = (3,5)")
    path = tmp_path / "train_eval_infer.config"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r":20: \[model\] base_kernels: FlexUNet base_kernels are square"):
        import_original_config(path)


def test_augmentor_maps_and_an_unused_broken_value_is_listed_not_fatal(tmp_path):
    if not TINY_CONFIG.is_file():
        pytest.skip("../shared/seed-weights is absent")
    extra = "\n[augmentor]\nvflip = True\nrotation = True\nangles = [90, 180, 270]\nshrinks = [0.8]\n"
    extra += "\n[infer3d]\nslice_rotation = cv2.ROTATE_90_CLOCKWISE\n"
    path = tmp_path / "train_eval_infer.config"
    path.write_text(TINY_CONFIG.read_text() + extra)
    result = import_original_config(path)
    assert result.config["train"]["augment"] == {"flip": True, "rot90": True}
    unmapped = {key: reason for key, _, reason in result.unmapped}
    assert "augmentor.shrinks" in unmapped
    assert "not a literal" in unmapped["infer3d.slice_rotation"]
    out = tmp_path / "x.yaml"
    out.write_text(result.to_yaml())
    assert resolve_config(config_file=out)["train"]["augment"]["rot90"] is True

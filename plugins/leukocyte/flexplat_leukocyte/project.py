"""The leukocyte project spec: classes and default config (package YAML), demo, data generator.

Imported when plugins register (``flexplat list``): keep it light, NumPy/OpenCV load lazily.
"""

from __future__ import annotations

from pathlib import Path

import flexplat
from flexplat import DataError
from flexplat_leukocyte.classes import GENERATOR_VERSION, original_id
from flexplat_leukocyte.command import generate

_HERE = Path(__file__).resolve().parent
CONFIG = flexplat.load_yaml(_HERE / "leukocyte.yaml")
DEMO_CONFIG = flexplat.load_yaml(_HERE / "leukocyte-demo.yaml")
DEMO_COUNT = 480
DEMO_ZOOM = 1.0  # domain-randomised: the scale is drawn per image (synthetic.Randomization.cell_fraction)

DATA_HINT = """\
Data: LISC (Leukocyte Images for Segmentation and Classification),
Rezatofighi & Soltanian-Zadeh, Computerized Medical Imaging and Graphics
35(4), 2011. Research and educational use only; redistribution is
prohibited, so flexplat never ships it. Download and unpack it yourself:
  flexplat generate leukocyte --source ~/LISC --out data/leukocyte
  flexplat train leukocyte --data data/leukocyte
No download? Synthetic smears, same classes and layout:
  flexplat generate leukocyte --synthetic 400 --out data/leukocyte-synth
  flexplat train leukocyte --demo   (small model, makes its own data)"""


def make_demo_data(out_dir: Path, seed: int) -> Path:
    """Write the ``--demo`` dataset (synthetic smears at the demo image size) to ``out_dir``.

    Does nothing if ``out_dir`` already holds this exact demo dataset (same generator version,
    renderer, count, zoom, size and seed); replaces an older synthetic demo dataset; refuses any
    other non-empty folder.
    """
    import yaml

    from flexplat_leukocyte.synthetic import Randomization, generate_synthetic, synthetic_record

    out_dir = Path(out_dir)
    size = int(DEMO_CONFIG["model"]["image_size"][0])
    randomization = Randomization()
    wanted = synthetic_record(DEMO_COUNT, DEMO_ZOOM, randomization)
    manifest_path = out_dir / "dataset.yaml"
    overwrite = False
    if manifest_path.is_file():
        try:
            manifest = yaml.safe_load(manifest_path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise DataError(f"{manifest_path}: unreadable manifest ({exc}); remove {out_dir} to regenerate") from None
        options = manifest.get("options", {}) if isinstance(manifest, dict) else {}
        if (
            isinstance(manifest, dict)
            and manifest.get("synthetic") == wanted
            and manifest.get("generator", {}).get("version") == GENERATOR_VERSION
            and options.get("size") == size
            and options.get("seed") == seed
        ):
            return out_dir
        overwrite = isinstance(manifest, dict) and manifest.get("generator", {}).get("kind") == "synthetic"
    generate_synthetic(
        DEMO_COUNT, out_dir, size=size, seed=seed, zoom=DEMO_ZOOM, randomization=randomization, overwrite=overwrite
    )
    return out_dir


PROJECT = flexplat.ProjectSpec(
    name="leukocyte",
    description="White-blood-cell segmentation and typing (LISC): background + 5 leukocyte types, "
    "the whole cell painted with its type colour",
    config=CONFIG,
    demo_config=DEMO_CONFIG,
    make_demo_data=make_demo_data,
    original_id=original_id,
    generate=generate,
    data_hint=DATA_HINT,
    object_label="cell",
    class_label="cell type",
)

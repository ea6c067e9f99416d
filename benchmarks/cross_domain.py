"""Cross-domain benchmark (issue 12): does a model carry to another lab's images? Not a test.

    python benchmarks/cross_domain.py                # full: trains ds1 runs and the demo, ~1 h on 2 cores
    python benchmarks/cross_domain.py --smoke        # every path with 1-epoch runs (a few minutes)
    python benchmarks/cross_domain.py --ds1-run RUN  # reuse a run folder written by `flexplat train zheng-wbc`

Everything goes through the `flexplat` command on run folders written by `flexplat train`, as a user
would run it. Data: ../shared/datasets/zheng-wbc-ds1 (Zheng et al. 2018, GPL-3.0) and
../shared/datasets/krd-wbc-sample (KRD-WBC, CC BY 4.0); both are read in place, never copied into the
repository (fine-tuning subsets are folders of symbolic links under the work folder).

Table 1, train -> test: ds1 -> ds1 held-out split, ds1 -> KRD, synthetic (--demo) -> ds1, synthetic -> KRD,
whole-cell Dice and cell-type accuracy (synthetic -> ds1 scores the whole cell only: ds1 types are named
as the demo's, so types are scored too). Table 2, ablation on ds1 -> KRD: the project's default recipe
(copy-paste onto blood-smear backgrounds, colour/acquisition augmentation; scale estimated), scale off
(--no-rescale), TTA on, and runs trained without copy-paste and without the colour augmentation (with
their ds1 held-out figures: what each costs at home).
Table 3, fine-tuning: 0, 5, 10 KRD images (`flexplat train --init RUN`), tested on the KRD images not
used. Results: benchmarks/results/cross_domain-<time>.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, machine, write_json

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "datasets"
KRD_CLASSES = """classes:
  - {name: background, color: [0, 0, 0]}
  - {name: basophil, color: [255, 255, 0]}
  - {name: eosinophil, color: [0, 255, 255]}
  - {name: lymphocyte, color: [0, 0, 255]}
  - {name: monocyte, color: [255, 0, 0]}
  - {name: neutrophil, color: [0, 255, 0]}
data:
  codec: rgb-mask
"""
"""The KRD sample's colours under the zheng-wbc / leukocyte class names, in their order."""
COLOUR_OFF = (
    "train.augment={hue: 0, saturation: 0, brightness: 0, contrast: 0, hed_scale: 0, hed_shift: 0, gamma: 0, "
    "blur_sigma: 0, noise_std: 0, jpeg_quality: 0, scale: 0}"
)
"""The ablation without the default recipe's colour and acquisition augmentation (flips, turns, copy-paste kept)."""
PASTE_OFF = "train.augment.paste=0"
"""The ablation without the default recipe's copy-paste onto blood-smear backgrounds."""
FINE_TUNE = (
    *("--epochs", "60", "--set", "train.steps_per_epoch=15", "--set", "train.learning_rate=5.0e-4"),
    *("--set", "data.split={valid: 0.2, test: 0.0, seed: 0}", "--set", "train.callbacks.early_stopping=false"),
    *("--set", "train.loss_options={class_weights: null}"),
)
"""Fine-tuning: 900 steps (a handful of images gives one step per epoch), the learning rate halved, and
without ds1's class weights (they favour lymphocytes, which ds1 lacks and the target images need not). Over
three training seeds: 450 steps gave type accuracy 0.625-0.75, 900 steps 0.75 each, without the weights
0.75-0.81."""


WORK: list[Path] = []
"""The work folder, set by main(): commands run there, so demo data lands there too."""


def flexplat(*args: str, timeout: float = 7200) -> None:
    """Run the `flexplat` command in the work folder; a failure stops the benchmark with its output."""
    command = [sys.executable, "-m", "flexplat", *args]
    print("$ flexplat " + " ".join(args), flush=True)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=WORK[0] if WORK else None)
    if done.returncode != 0:
        raise SystemExit(f"flexplat {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def scores(run: Path, key: str) -> dict[str, Any]:
    figures = json.loads((run / "evaluation.json").read_text())[key]
    return {"object_dice": figures["object_dice"], "class_accuracy": figures["class_accuracy"],
            "images": figures["images"], "scale": figures.get("scale")}  # fmt: skip


def evaluate(run: Path, data: Path | None = None, *extra: str, config: Path | None = None) -> dict[str, Any]:
    args = ["evaluate", str(run), *extra]
    if data is not None:
        args += ["--data", str(data)]
    if config is not None:
        args += ["--config", str(config)]
    flexplat(*args)
    return scores(run, "test" if data is None else f"folder:{data.resolve().name}")


def train(out: Path, *args: str, smoke: bool) -> Path:
    if not (out / "model.keras").is_file():
        extra = ["--epochs", "1"] if smoke else []
        flexplat("train", *args, "--out", str(out), "--no-evaluate", *extra)
    return out


def subset(krd: Path, names: list[str], folder: Path) -> Path:
    """A folder of symbolic links to some KRD images and their masks (nothing copied)."""
    for kind in ("images", "masks"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for name in names:
            link = folder / kind / name
            if not link.exists():
                link.symlink_to((krd / kind / name).resolve())
    return folder


def fine_tuning(ds1_run: Path, krd: Path, work: Path, krd_yaml: Path, smoke: bool) -> list[dict[str, Any]]:
    names = sorted(p.name for p in (krd / "images").iterdir())
    rows = []
    test = subset(krd, names[10:], work / "krd-test")
    rows.append({"target_images": 0, **evaluate(ds1_run, test, config=krd_yaml)})
    for count in (5, 10):
        train_set = subset(krd, names[:count], work / f"krd-train-{count}")
        run = work / f"finetune-{count}"
        if not (run / "model.keras").is_file():
            recipe = ("--epochs", "1") if smoke else FINE_TUNE
            flexplat("train", "zheng-wbc", "--config", str(krd_yaml), "--data", str(train_set), "--init",
                     str(ds1_run), "--out", str(run), "--no-evaluate", *recipe)  # fmt: skip
        rows.append({"target_images": count, **evaluate(run, test, config=krd_yaml)})
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ds1", type=Path, default=SHARED / "zheng-wbc-ds1")
    parser.add_argument("--krd", type=Path, default=SHARED / "krd-wbc-sample")
    parser.add_argument("--work", type=Path, default=HERE / "results" / "cross_domain-work")
    parser.add_argument("--ds1-run", type=Path, help="a finished `flexplat train zheng-wbc` run to reuse")
    parser.add_argument("--smoke", action="store_true", help="1-epoch runs: checks every path, not the figures")
    parser.add_argument("--out", type=Path, help="result JSON (default benchmarks/results/cross_domain-<time>.json)")
    args = parser.parse_args(argv)
    if not args.ds1.is_dir() or not args.krd.is_dir():
        raise SystemExit(f"data not found ({args.ds1}, {args.krd}); this benchmark needs ../shared/datasets")
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    WORK[:] = [args.work]
    krd_yaml = args.work / "krd.yaml"
    krd_yaml.write_text(KRD_CLASSES, encoding="utf-8")
    started = time.time()
    ds1_run = args.ds1_run or train(args.work / "ds1", "zheng-wbc", "--data", str(args.ds1), smoke=args.smoke)
    ablated = {
        name: train(args.work / folder, "zheng-wbc", "--data", str(args.ds1), "--set", change, smoke=args.smoke)
        for name, folder, change in (
            ("copy-paste off", "ds1-paste-off", PASTE_OFF),
            ("colour augmentation off", "ds1-colour-off", COLOUR_OFF),
        )
    }
    demo_run = train(args.work / "demo", "leukocyte", "--demo", smoke=args.smoke)
    table = {
        "ds1 -> ds1 held-out": evaluate(ds1_run),
        "ds1 -> KRD": evaluate(ds1_run, args.krd, config=krd_yaml),
        "synthetic -> ds1": evaluate(
            demo_run,
            args.ds1,
            "--set",
            "data.codec=zheng-wbc",
            "--set",
            "data.codec_options={labels: class_labels.csv, task: type}",
        ),  # fmt: skip
        "synthetic -> KRD": evaluate(demo_run, args.krd, config=krd_yaml),
    }
    ablation = {
        "default": table["ds1 -> KRD"],
        "scale off (--no-rescale)": evaluate(ds1_run, args.krd, "--no-rescale", config=krd_yaml),
        "TTA on (--tta)": evaluate(ds1_run, args.krd, "--tta", config=krd_yaml),
    }
    for name, run in ablated.items():
        ablation[f"{name} in training"] = evaluate(run, args.krd, config=krd_yaml)
        ablation[f"{name}, ds1 held-out"] = evaluate(run)
    result = {
        "benchmark": "cross_domain",
        "smoke": args.smoke,
        "machine": machine(),
        "seconds": round(time.time() - started, 1),
        "train_to_test": table,
        "ablation_ds1_to_krd": ablation,
        "fine_tuning_krd": fine_tuning(ds1_run, args.krd, args.work, krd_yaml, args.smoke),
    }
    write_json(args.out or RESULTS / f"cross_domain-{time.strftime('%Y%m%d-%H%M%S')}.json", result)
    print_tables(result)
    return result


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_tables(result: dict[str, Any]) -> None:
    for title, rows in (
        ("train -> test", result["train_to_test"]),
        ("ablation, ds1 -> KRD", result["ablation_ds1_to_krd"]),
    ):
        print(f"\n{title:<40} whole-cell Dice  type accuracy")
        for name, row in rows.items():
            print(f"{name:<40} {_fmt(row['object_dice']):>15}  {_fmt(row['class_accuracy']):>13}")
    print("\nfine-tuning on KRD images     whole-cell Dice  type accuracy (on the other KRD images)")
    for row in result["fine_tuning_krd"]:
        dice, accuracy = _fmt(row["object_dice"]), _fmt(row["class_accuracy"])
        print(f"{row['target_images']:>3} images{'':<20} {dice:>15}  {accuracy:>13}")


if __name__ == "__main__":
    main()

"""`flexplat generate leukocyte`: build a dataset from raw LISC or from synthetic smears.

Imported when the CLI starts (through the project spec), so only click is imported at module
level; NumPy/OpenCV load when the command runs.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from flexplat import FlexplatError

AUGMENT_HELP = "rot90, rot180, rot270, hflip, vflip, elastic, barrel, pincushion"


@click.command(name="leukocyte")
@click.option(
    "--source",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Raw LISC folder (holding 'Main Dataset' and 'Ground Truth Segmentation').",
)
@click.option("--synthetic", "count", type=click.IntRange(min=1), metavar="N", help="Draw N synthetic smears instead.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Dataset folder to create.")
@click.option(
    "--size",
    type=click.IntRange(16, 4096),
    help="Side of the square output images [default: 512 from LISC, 256 synthetic].",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the split, the warps and the synthetic drawing.")
@click.option(
    "--split",
    "split_text",
    default="70/15/15",
    show_default=True,
    help="TRAIN/VALID/TEST percentages of ORIGINAL images, stratified by class.",
)
@click.option(
    "--augment",
    "augment_text",
    metavar="LIST",
    help=f"Comma list of {AUGMENT_HELP}, or none; copies of TRAIN originals only "
    "[default: all of them from LISC, none synthetic].",
)
@click.option(
    "--elastic-alpha", default=1000.0, show_default=True, help="Elastic warp strength (px of a 512-px image)."
)
@click.option(
    "--elastic-sigma", default=20.0, show_default=True, help="Elastic warp smoothness (px of a 512-px image)."
)
@click.option(
    "--lens-amount",
    type=click.FloatRange(0.0, 0.49),
    default=0.3,
    show_default=True,
    help="Strength of the barrel/pincushion lenses.",
)
@click.option(
    "--zoom",
    type=click.FloatRange(0.25, 4.0),
    help="Synthetic only: magnification (1 = LISC-like field of about 7 red cells across) [default: 1].",
)
@click.option(
    "--randomize",
    is_flag=True,
    help="Synthetic only: domain-randomised smears (stain colours, cell size, red cells, background, "
    "light, blur, noise) so a model carries to real images; --zoom then scales the drawn sizes.",
)
@click.option("--parts", is_flag=True, help="Nucleus and cytoplasm of each type as separate classes (11 classes).")
@click.option("--overwrite", is_flag=True, help="Replace a previously generated dataset at --out (once complete).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def generate(
    source: Path | None,
    count: int | None,
    out: Path,
    size: int | None,
    seed: int,
    split_text: str,
    augment_text: str | None,
    elastic_alpha: float,
    elastic_sigma: float,
    lens_amount: float,
    zoom: float | None,
    randomize: bool,
    parts: bool,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Build a leukocyte dataset (train/valid/test images + RGB masks + dataset.yaml).

    \b
    From the LISC download (see `flexplat info leukocyte`):
      flexplat generate leukocyte --source ~/LISC --out data/leukocyte
    Synthetic smears, no download needed (--randomize: varied enough to carry to real smears):
      flexplat generate leukocyte --synthetic 200 --out data/leukocyte-synthetic

    The split is drawn over ORIGINAL images before augmentation, so no copy of a test image
    is ever trained on. The dataset is built next to --out and renamed into place when done.
    """
    from flexplat_leukocyte import warp
    from flexplat_leukocyte.dataset import parse_split

    if (source is None) == (count is None):
        raise click.UsageError("give exactly one of --source LISC_DIR or --synthetic N")
    if source is not None and (zoom is not None or randomize):
        option = "--zoom" if zoom is not None else "--randomize"
        raise click.UsageError(f"{option} applies to --synthetic only (LISC images are real)")
    try:
        split = parse_split(split_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--split") from None
    default_augment = warp.AUGMENTATIONS if source is not None else ()
    try:
        augment = warp.parse_augment(augment_text, default_augment)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--augment") from None
    if elastic_sigma <= 0 or elastic_alpha < 0:
        raise click.BadParameter("needs alpha >= 0 and sigma > 0", param_hint="--elastic-alpha/--elastic-sigma")
    warp_options = warp.WarpOptions(elastic_alpha, elastic_sigma, lens_amount)
    common = dict(seed=seed, split=split, augment=augment, parts=parts, warp_options=warp_options, overwrite=overwrite)
    started = time.perf_counter()
    try:
        if source is not None:
            from flexplat_leukocyte.lisc import DEFAULT_SIZE, generate_lisc

            manifest = generate_lisc(source, out, size=size or DEFAULT_SIZE, progress=not quiet, **common)
        else:
            from flexplat_leukocyte.synthetic import DEFAULT_SIZE, Randomization, generate_synthetic

            randomization = Randomization() if randomize else None
            manifest = generate_synthetic(
                count,
                out,
                size=size or DEFAULT_SIZE,
                zoom=zoom or 1.0,
                randomization=randomization,
                progress=not quiet,
                **common,
            )
    except FlexplatError as exc:
        raise click.ClickException(str(exc)) from None
    report(manifest, out, time.perf_counter() - started)


def report(manifest: dict, out: Path, seconds: float) -> None:
    """Print what was written (counts per split and class) and what was left out."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    counts = manifest["counts"]
    classes = list(next(iter(counts.values()))["per_class"])
    table = Table(title=f"{out} ({manifest['generator']['kind']}, {seconds:.1f} s)", title_justify="left")
    table.add_column("split")
    for cls in classes:
        table.add_column(cls[:4], justify="right")  # baso, eosi, lymp, mono, neut
    table.add_column("originals", justify="right")
    table.add_column("files", justify="right")
    for split, entry in counts.items():
        cells = [f"{entry['per_class'][c]['originals']}/{entry['per_class'][c]['files']}" for c in classes]
        table.add_row(split, *cells, str(entry["originals"]), str(entry["files"]))
    console.print(table)
    console.print("per class: originals/files (augmented copies are made of train originals only)")
    skipped = manifest.get("skipped", {})
    notes = {
        "no_mask": "image(s) without an expert mask (not usable)",
        "mask_without_image": "mask(s) without an image",
        "unusable": "original(s) unreadable or inconsistent",
        "folders": "folder(s) skipped (mixt or unknown)",
        "ignored_files": "file(s) ignored (not matching the LISC layout)",
    }
    for key, text in notes.items():
        items = skipped.get(key)
        if items:
            shown = ", ".join(list(items)[:8]) + (", ..." if len(items) > 8 else "")
            console.print(f"[yellow]skipped:[/] {len(items)} {text}: {shown}")
    console.print(f"manifest: {out / 'dataset.yaml'}")

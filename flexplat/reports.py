"""What `flexplat data check` shows: a :class:`~flexplat.data.check.CheckReport` rendered with rich.

The checking lives in the data layer (``flexplat.data.check``); this module only presents it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.table import Table

from flexplat.data.check import CheckReport, SplitReport


def render_check_report(report: CheckReport, console: Any, max_lines: int = 50) -> None:
    """Print ``report`` as rich tables: splits, classes, snapped pixels, warnings, errors."""
    console.print(
        f"[bold]Dataset check[/] {report.root}  codec [cyan]{report.codec}[/]  "
        f"{len(report.classes)} classes{'  (lenient)' if report.lenient else ''}"
    )
    console.print(_splits_table(report))
    splits = _splits_with_files(report)
    console.print(_classes_table(report, splits))
    snapped = [(name, n) for s in splits for name, n in s.snapped.items()]
    if snapped:
        console.print(_snapped_table(snapped, report.root, max_lines))
    _print_list(console, "Warnings", "yellow", report.warnings, max_lines)
    _print_list(console, "Errors", "red", report.errors, max_lines)
    if snapped:
        console.print(f"{sum(n for _, n in snapped)} mask pixels snapped to the nearest class in {len(snapped)} files")
    _print_verdict(report, console)


def _splits_with_files(report: CheckReport) -> list[SplitReport]:
    """The splits that hold any file (paired or not)."""
    return [s for s in report.splits.values() if s.pairs or s.images_without_mask or s.masks_without_image]


def _splits_table(report: CheckReport) -> Table:
    """One row per split: pairs, usable pairs, unpaired files, snapped pixels (files), then the folders.

    Short headers and the (long) source folders in the last, folding column keep it readable at
    80 columns (long headers wrapped into one word per line, folders were cut with an ellipsis).
    """
    table = Table(title="Splits", title_justify="left")
    for column in ("split", "pairs", "usable", "no mask", "no image", "snapped"):
        table.add_column(column, justify="left" if column == "split" else "right", no_wrap=True)
    table.add_column("folders", overflow="fold")
    for s in report.splits.values():
        table.add_row(
            s.name,
            str(s.pairs),
            str(s.usable),
            _count(len(s.images_without_mask)),
            _count(len(s.masks_without_image)),
            f"{s.snapped_pixels} px ({len(s.snapped)})" if s.snapped_pixels else "0",
            s.source,
        )
    return table


def _classes_table(report: CheckReport, splits: list[SplitReport]) -> Table:
    """Per class and split: its share of the pixels and the number of images containing it."""
    table = Table(title="Classes: pixel share (images containing the class)", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("class")
    table.add_column("colour")
    for s in splits:
        table.add_column(s.name, justify="right")
    columns = [(s.class_pixels, s.class_images) for s in splits]
    if len(splits) > 1:
        table.add_column("all", justify="right")
        columns.append((_summed(s.class_pixels for s in splits), _summed(s.class_images for s in splits)))
    for index, info in enumerate(report.classes):
        r, g, b = info.color
        cells = [f"{100 * pixels[index] / (sum(pixels) or 1):.2f}% ({images[index]})" for pixels, images in columns]
        table.add_row(str(index), info.name, f"[on rgb({r},{g},{b})]    [/]", *cells)
    return table


def _summed(counts: Iterable[list[int]]) -> list[int]:
    """Element-wise sums of equally long count lists."""
    return [sum(v) for v in zip(*counts, strict=True)]


def _snapped_table(snapped: list[tuple[str, int]], root: Path, max_lines: int) -> Table:
    """Mask files with pixels snapped to the nearest class colour (at most ``max_lines`` rows)."""
    table = Table(title="Snapped mask pixels (colours mapped to the nearest class)", title_justify="left")
    table.add_column(f"mask file (under {root})", overflow="fold")
    table.add_column("pixels", justify="right")
    for name, n in sorted(snapped)[:max_lines]:
        table.add_row(_relative(name, root), str(n))
    if len(snapped) > max_lines:
        table.add_row(f"... and {len(snapped) - max_lines} more files", "")
    return table


def _print_verdict(report: CheckReport, console: Any) -> None:
    """The last line: OK with the pair count (and skips), or the number of errors."""
    total = report.total_pairs
    if report.ok:
        skipped = f", {len(report.skipped)} skipped (lenient)" if report.skipped else ""
        console.print(f"[bold green]OK[/]: {total} pairs{skipped}")
    else:
        console.print(f"[bold red]{len(report.errors)} error(s)[/] in {total} pairs")


def _relative(path: str, root: Path) -> str:
    """``path`` relative to ``root`` when it lies under it, else unchanged."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path


def _count(n: int) -> str:
    """A count of problem files, red when non-zero."""
    return f"[red]{n}[/]" if n else "0"


def _print_list(console: Any, title: str, colour: str, items: list[str], max_lines: int) -> None:
    """A titled bullet list of at most ``max_lines`` items (nothing when empty)."""
    if not items:
        return
    console.print(f"[bold {colour}]{title} ({len(items)}):[/]")
    for item in items[:max_lines]:
        console.print(f"  - {item}", markup=False, highlight=False, soft_wrap=True)
    if len(items) > max_lines:
        console.print(f"  ... and {len(items) - max_lines} more")

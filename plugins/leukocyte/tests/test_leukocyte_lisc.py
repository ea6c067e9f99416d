"""The LISC generator on a fake LISC tree in the documented layout (see conftest.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from flexplat_leukocyte.classes import CYTOPLASM, NUCLEUS, TYPES, original_id
from flexplat_leukocyte.command import generate
from flexplat_leukocyte.dataset import Original, write_dataset
from flexplat_leukocyte.lisc import generate_lisc, read_pair, scan_lisc
from flexplat_leukocyte.testing import BACKGROUND_BGR, CYTOPLASM_BGR, NUCLEUS_BGR, PER_CLASS, build_fake_lisc, draw

COLOR = {prefix: color for prefix, _, color in TYPES}  # RGB


def pairs(out: Path):
    """Every (split, stem, image BGR, mask RGB) of a generated dataset."""
    for split in ("train", "valid", "test"):
        for path in sorted((out / split / "images").glob("*.png")):
            mask = cv2.imread(str(out / split / "masks" / path.name), cv2.IMREAD_COLOR)[..., ::-1]
            yield split, path.stem, cv2.imread(str(path), cv2.IMREAD_COLOR), mask


def colours(mask: np.ndarray) -> set[tuple[int, int, int]]:
    packed = np.unique(mask.astype(np.int32) @ np.array([1 << 16, 1 << 8, 1], np.int32))
    return {(int(v) >> 16, (int(v) >> 8) & 255, int(v) & 255) for v in packed}


def test_scan_lists_usable_originals_and_everything_left_out(fake_lisc):
    scan = scan_lisc(fake_lisc.root)
    assert sorted(i.id for i in scan.items) == sorted(fake_lisc.cells)
    assert len(scan.items) == 5 * PER_CLASS
    assert scan.no_mask == ["neut_8"]
    assert "Main Dataset/mixt" in scan.skipped_folders
    assert "Ground Truth Segmentation/Mixt" in scan.skipped_folders
    assert "Main Dataset/eosi/Thumbs.db" in scan.ignored_files
    assert "Ground Truth Segmentation/MONO/areaforexpert2" in scan.ignored_files
    assert {i.cls for i in scan.items} == {name for _, name, _ in TYPES}


def test_read_pair_pads_the_expert_mask_back_onto_the_image(fake_lisc):
    for item in scan_lisc(fake_lisc.root).items:
        image, labels, levels = read_pair(item)
        _, cell_mask, nucleus_mask = draw(fake_lisc.cells[item.id])
        assert labels.shape == image.shape[:2] == (576, 720)
        assert np.array_equal(labels > 0, cell_mask == 1), item.id  # no 4-pixel shift
        if item.id.startswith("baso"):
            assert levels == [50]
            assert set(np.unique(labels)) == {0, NUCLEUS}  # single level: the whole cell
        else:
            assert len(levels) == 2
            assert np.array_equal(labels == NUCLEUS, nucleus_mask == 1)
            assert np.array_equal(labels == CYTOPLASM, (cell_mask == 1) & (nucleus_mask == 0))


def test_painted_masks_coincide_with_the_drawn_cells(lisc_576):
    out, _ = lisc_576
    checked = 0
    for _, stem, image, mask in pairs(out):
        cell_pixels = np.all(image == CYTOPLASM_BGR, -1) | np.all(image == NUCLEUS_BGR, -1)
        painted = np.any(mask != 0, -1)
        if stem.endswith("_barrel"):  # bilinear image vs nearest mask: boundaries may differ by a pixel
            cell_like = np.abs(image.astype(int) - BACKGROUND_BGR).sum(-1) > 60
            iou = (cell_like & painted).sum() / (cell_like | painted).sum()
            assert iou > 0.95, stem
        else:
            assert np.array_equal(cell_pixels, painted), stem
        checked += 1
    assert checked == 5 * PER_CLASS + 2 * 5 * 5  # originals + 2 copies of 5 train originals per class


def test_whole_cell_painted_in_its_class_colour_only(lisc_576):
    out, _ = lisc_576
    for _, stem, _, mask in pairs(out):
        assert colours(mask) == {(0, 0, 0), COLOR[stem.split("_")[0]]}, stem


def test_cell_at_the_edge_is_not_cut(lisc_576, fake_lisc, tmp_path):
    out, manifest = lisc_576
    cell = fake_lisc.cells["mono_1"]
    _, cell_mask, _ = draw(cell)
    split = next(s for s, ids in manifest["splits"].items() if "mono_1" in ids)
    mask = cv2.imread(str(out / split / "masks" / "mono_1.png"))
    assert np.any(mask != 0, -1).sum() == cell_mask.sum()  # every cell pixel kept
    assert manifest["crops"]["by_original"]["mono_1"] == [720 - 576, 0, 576]

    small = generate_lisc(fake_lisc.root, tmp_path / "s144", size=144, augment=(), progress=False)
    scale = 144 / 576
    for oid, cell in fake_lisc.cells.items():
        split = next(s for s, ids in small["splits"].items() if oid in ids)
        mask = np.any(cv2.imread(str(tmp_path / "s144" / split / "masks" / f"{oid}.png")) != 0, -1)
        x0, y0, side = small["crops"]["by_original"][oid]
        assert side == 576
        _, cell_mask, _ = draw(cell)
        assert mask.sum() == pytest.approx(cell_mask.sum() * scale * scale, rel=0.03), oid
        ys, xs = np.nonzero(mask)
        # pixel centres: source i -> output (i + 0.5) * scale - 0.5; a 4-px source shift would be 1 px here
        assert xs.mean() == pytest.approx((cell.cx - x0 + 0.5) * scale - 0.5, abs=0.2), oid
        assert ys.mean() == pytest.approx((cell.cy - y0 + 0.5) * scale - 0.5, abs=0.2), oid


def test_manifest_counts_and_split_by_original(lisc_576):
    out, manifest = lisc_576
    splits = manifest["splits"]
    assert sorted(sum(splits.values(), [])) == sorted(f"{p}_{n}" for p, *_ in TYPES for n in range(1, 8))
    for split, entry in manifest["counts"].items():
        files = sorted(p.stem for p in (out / split / "images").glob("*.png"))
        assert len(files) == entry["files"]
        assert sorted({original_id(f) for f in files}) == sorted(splits[split])
        for cls, per in entry["per_class"].items():
            assert per["originals"] == {"train": 5, "valid": 1, "test": 1}[split], (split, cls)
            assert per["files"] == per["originals"] * (3 if split == "train" else 1)
    test_ids = set(splits["test"])
    for split in ("train", "valid"):
        for path in (out / split / "images").glob("*.png"):
            assert original_id(path.stem) not in test_ids
    assert not any("_" in s.split("_", 1)[1] for s in (p.stem for p in (out / "test/images").glob("*")))
    assert manifest["skipped"]["no_mask"] == ["neut_8"]
    assert not list(out.glob("*/images/mixt*"))
    on_disk = yaml.safe_load((out / "dataset.yaml").read_text())
    assert on_disk["splits"] == splits
    assert on_disk["generator"]["kind"] == "lisc"
    assert on_disk["classes"][1] == {"name": "basophil", "color": [0, 0, 255]}
    assert on_disk["mask_levels"]["monocyte"] == [[175, 200]]
    assert on_disk["mask_levels"]["basophil"] == [[50]]


def test_parts_paint_nucleus_and_cytoplasm(fake_lisc, tmp_path):
    out = tmp_path / "parts"
    result = CliRunner().invoke(
        generate,
        [
            "--source",
            str(fake_lisc.root),
            "--out",
            str(out),
            "--size",
            "576",
            "--parts",
            "--augment",
            "none",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = yaml.safe_load((out / "dataset.yaml").read_text())
    names = [c["name"] for c in manifest["classes"]]
    assert len(names) == 11 and names[1:3] == ["basophil_cytoplasm", "basophil_nucleus"]
    for _, stem, image, mask in pairs(out):
        full = np.array(COLOR[stem.split("_")[0]])
        nucleus_px = np.all(image == NUCLEUS_BGR, -1)
        cyto_px = np.all(image == CYTOPLASM_BGR, -1)
        if stem.startswith("baso"):  # single-level mask: the whole cell is "nucleus"
            assert np.all(mask[cyto_px] == full)
        else:
            assert np.all(mask[nucleus_px] == full), stem
            assert np.all(mask[cyto_px] == full // 2), stem
        assert np.all(mask[~(nucleus_px | cyto_px)] == 0)


def test_refuses_non_empty_out_without_overwrite(fake_lisc, tmp_path):
    runner = CliRunner()
    out = tmp_path / "data"
    args = ["--source", str(fake_lisc.root), "--out", str(out), "--size", "64", "--augment", "none", "--quiet"]
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = runner.invoke(generate, args)
    assert result.exit_code != 0
    assert str(out) in result.output and "--overwrite" in result.output
    result = runner.invoke(generate, [*args, "--overwrite"])  # not a generated dataset: still refused
    assert result.exit_code != 0 and "notes.txt" in result.output
    assert (out / "notes.txt").read_text() == "mine"

    (out / "notes.txt").unlink()
    assert runner.invoke(generate, args).exit_code == 0  # empty folder: fine
    first = (out / "dataset.yaml").read_text()
    result = runner.invoke(generate, args)
    assert result.exit_code != 0 and "--overwrite" in result.output
    assert (out / "dataset.yaml").read_text() == first
    result = runner.invoke(generate, [*args, "--overwrite", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((out / "dataset.yaml").read_text())["options"]["seed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no staging folders left behind


def test_a_failed_run_leaves_no_dataset_and_keeps_the_old_one(tmp_path):
    originals = [Original(f"neut_{i}", "neutrophil") for i in range(1, 6)]
    calls = []

    def load(original):
        calls.append(original.id)
        if original.id == "neut_4":
            raise RuntimeError("disk on fire")
        image = np.full((32, 32, 3), 200, np.uint8)
        labels = np.zeros((32, 32), np.uint8)
        labels[10:20, 10:20] = 1
        return image, labels

    from flexplat_leukocyte.dataset import GenerateOptions

    out = tmp_path / "ds"
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_dataset(out, originals, load, GenerateOptions(32), kind="test", source="-", progress=False, workers=1)
    assert list(tmp_path.iterdir()) == []

    write_dataset(out, originals[:3], load, GenerateOptions(32), kind="test", source="-", progress=False)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(RuntimeError):
        write_dataset(
            out, originals, load, GenerateOptions(32), kind="test", source="-", overwrite=True, progress=False
        )
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_a_failure_cancels_the_queued_originals(tmp_path, monkeypatch):
    """After one original fails, the queued ones are cancelled, not worked through.

    Deterministic: originals after the failing one block until the pool is shut down, so at most
    the two workers' in-flight originals start beyond it (none, one or two, depending on whether a
    worker picked one up before the failure was seen), however threads are scheduled.
    """
    from concurrent.futures import ThreadPoolExecutor

    from flexplat_leukocyte import dataset
    from flexplat_leukocyte.dataset import GenerateOptions

    shut_down = threading.Event()

    class Pool(ThreadPoolExecutor):
        def shutdown(self, wait=True, *, cancel_futures=False):
            super().shutdown(wait=False, cancel_futures=cancel_futures)  # cancels what is still queued
            shut_down.set()  # only now let the blocked originals finish
            super().shutdown(wait=wait)

    monkeypatch.setattr(dataset, "ThreadPoolExecutor", Pool)
    calls = []

    def load(original):
        calls.append(original.id)
        number = int(original.id.split("_")[1])
        if number == 4:
            raise RuntimeError("disk on fire")
        if number > 4:
            assert shut_down.wait(timeout=30)
        return np.full((8, 8, 3), 200, np.uint8), np.zeros((8, 8), np.uint8)

    many = [Original(f"neut_{i}", "neutrophil") for i in range(1, 201)]
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_dataset(
            tmp_path / "big", many, load, GenerateOptions(8), kind="test", source="-", progress=False, workers=2
        )
    started = sorted(int(oid.split("_")[1]) for oid in calls)
    assert started == list(range(1, len(started) + 1)) and 4 <= len(started) <= 6  # 7..200 were cancelled
    assert list(tmp_path.iterdir()) == []


def test_unusable_pairs_are_skipped_and_reported(tmp_path):
    fake = build_fake_lisc(tmp_path / "LISC")
    bad = fake.root / "Ground Truth Segmentation" / "Eosi" / "areaforexpert1" / "3_expert.bmp"
    cv2.imwrite(str(bad), np.zeros((500, 600), np.uint8))  # neither 712x568 nor 720x576
    (fake.root / "Main Dataset" / "LYMP" / "2.bmp").write_bytes(b"not a bitmap")
    manifest = generate_lisc(fake.root, tmp_path / "out", size=64, augment=(), progress=False)
    unusable = manifest["skipped"]["unusable"]
    assert set(unusable) == {"eosi_3", "lymp_2"}
    assert "600x500" in unusable["eosi_3"] and "712x568" in unusable["eosi_3"]
    assert all("eosi_3" not in ids and "lymp_2" not in ids for ids in manifest["splits"].values())
    assert sum(e["originals"] for e in manifest["counts"].values()) == 5 * PER_CLASS - 2


def test_cli_needs_exactly_one_source(tmp_path, fake_lisc):
    runner = CliRunner()
    assert runner.invoke(generate, ["--out", str(tmp_path / "a")]).exit_code == 2
    both = ["--source", str(fake_lisc.root), "--synthetic", "3", "--out", str(tmp_path / "b")]
    assert runner.invoke(generate, both).exit_code == 2
    bad = runner.invoke(generate, ["--synthetic", "3", "--out", str(tmp_path / "c"), "--augment", "twirl"])
    assert bad.exit_code == 2 and "twirl" in bad.output
    bad = runner.invoke(generate, ["--synthetic", "3", "--out", str(tmp_path / "d"), "--split", "70/30"])
    assert bad.exit_code == 2 and "--split" in bad.output
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


def test_missing_lisc_folders_named_in_the_error(tmp_path):
    (tmp_path / "LISC" / "Main Dataset").mkdir(parents=True)
    result = CliRunner().invoke(generate, ["--source", str(tmp_path / "LISC"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "Ground Truth Segmentation" in result.output

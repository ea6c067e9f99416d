"""Every performance benchmark in one run, summarised as issue 8's six groups of ratios.

    python benchmarks/run.py                  # full: about 80 min on 2 cores
    python benchmarks/run.py --smoke          # every path with tiny models (a few minutes)
    python benchmarks/run.py --skip zheng     # leave out a script (inference, training, zheng, cross_domain)

Runs, one after the other and each in its own processes, ``inference.py`` (start-up, per-image
overhead, FLOP ceiling, tiled and image-count scaling, and issue 13's ONNX Runtime against
TensorFlow and the original-style loop on run folders written by ``flexplat train``; the 125M
model's ONNX export needs about 18 GB and is cached with ``--inference-work DIR``), ``training.py`` (memory 200 vs 2,000
images, training speed) and ``zheng_accuracy.py --compare`` (flexunet-small vs flexunet on the real Zheng
images; skipped when ../shared is absent) and ``cross_domain.py`` (issue 12: models on another lab's
images; also needs ../shared) and ``distributed.py`` (issue 14: images/s with 1 and 2 workers, the
8-GPU estimate). Each writes its own JSON into
``benchmarks/results/run-<time>/``; this script then prints one table of the six groups (value,
target, met or not) and writes ``summary.json`` beside them. Every ratio comes from within one
script's run on this machine; absolute seconds depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, load_average, machine, write_json

HERE = Path(__file__).resolve().parent
ZHENG_DATA = HERE.parent / ".." / "shared" / "datasets" / "zheng-wbc-ds1"
SCRIPTS = ("inference", "training", "zheng", "cross_domain", "distributed")
FLOPS_SIZE = 512  # the original leukocyte input
FLOPS_TARGET = 10.0  # flexunet / flexunet-small FLOPs per image, at least


def run_script(name: str, args: list[str], log: Path) -> None:
    """Run one benchmark script, its output shown live and kept in ``log``."""
    command = [sys.executable, str(HERE / f"{name}.py"), *args]
    print(f"\n=== {' '.join(command[1:])}", flush=True)
    with open(log, "w") as sink:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sink.write(line)
        if proc.wait():
            raise SystemExit(f"{name}.py failed (exit {proc.returncode}); its output is in {log}")


def preset_flops() -> dict[str, Any]:
    """Analytic FLOPs per image of the two presets at the original input size (no TensorFlow)."""
    from flexplat.plugins import get_registry

    registry = get_registry()
    figures = {}
    for name in ("flexunet", "flexunet-small"):
        described = registry.get("model", name).describe((FLOPS_SIZE, FLOPS_SIZE), 3, 6)
        figures[name] = {"flops": float(described["flops"]), "parameters": int(described["parameters"])}
    figures["ratio"] = figures["flexunet"]["flops"] / figures["flexunet-small"]["flops"]
    return figures


Row = tuple[str, str, str, str, bool | None]
"""(group, measure, value, target, met) of the summary table; met None = reported only."""


def rows(results: dict[str, Any]) -> list[Row]:
    """The summary table's rows, group by group, from the results the scripts wrote."""
    inf = results.get("inference") or {}
    train = results.get("training") or {}
    return [
        *(inference_rows(inf) if inf else []),
        *training_memory_rows(train.get("memory")),
        *training_speed_rows(train.get("speed")),
        *flops_rows(results.get("flops")),
        *zheng_rows(results.get("zheng")),
        *cross_domain_rows(results.get("cross_domain")),
        *tiled_rows(inf.get("tiled")),
        *count_rows(inf),
        *backend_rows(inf.get("backends")),
        *distributed_rows(results.get("distributed")),
    ]


def inference_rows(inf: dict[str, Any]) -> list[Row]:
    """Groups 1 and 2: start-up, per-image overhead and the fraction of the FLOP ceiling."""
    s, p, f = inf["startup"], inf["per_image"], inf["flops"]
    return [
        (
            "1 start-up",
            "to 1st prediction, flexplat / original-style",
            f"{s['flexplat_s']:.1f} / {s['original_s']:.1f} s = {s['ratio']:.2f}",
            "<= 0.5",
            s["ratio"] <= 0.5,
        ),
        (
            "2 inference",
            "per image, flexplat / pure forward pass",
            f"{p['flexplat_s']:.3f} / {p['forward_s']:.3f} s = {1 + p['overhead_vs_forward']:.2f}",
            "<= 1.10",
            p["overhead_vs_forward"] <= 0.10,
        ),
        (
            "2 inference",
            "time outside model calls (same process)",
            f"{p['outside_model_fraction']:.1%}",
            "<= 10 %",
            p["outside_model_fraction"] <= 0.10,
        ),
        (
            "2 inference",
            "per image, flexplat / original-style",
            f"{p['flexplat_s']:.3f} / {p['original_s']:.3f} s = {1 / p['speedup_vs_original']:.2f}",
            "<= 1",
            p["speedup_vs_original"] >= 1.0,
        ),
        (
            "2 inference",
            "fraction of the FLOP ceiling, flexplat (forward)",
            f"{f['flexplat_fraction']:.2f} ({f['forward_fraction']:.2f}) of {f['ceiling_flops'] / 1e9:.0f} GFLOP/s",
            ">= 0.6 (goal)",
            f["flexplat_fraction"] >= 0.6,
        ),
    ]


def training_memory_rows(memory: dict[str, Any] | None) -> list[Row]:
    """Group 3: peak RSS growth from 200 to 2,000 training images."""
    if not memory:
        return []
    growth = memory["growth"]
    return [
        (
            "3 training memory",
            "peak RSS 2,000 / 200 images, flexplat (original-style)",
            f"{growth['flexplat']:.3f} ({growth['original']:.2f})",
            "< 1.10",
            growth["flexplat"] < 1.10,
        )
    ]


def training_speed_rows(speed: dict[str, Any] | None) -> list[Row]:
    """Group 4: images per second of each variant against its baseline."""
    if not speed:
        return []
    ips = speed["images_per_s"]
    return [
        (
            "4 training speed",
            f"images/s {c['variant']} / {c['baseline']} (median of rounds)",
            f"{ips[c['variant']]:.2f} / {ips[c['baseline']]:.2f}, ratio {c['ratio']:.2f}",
            "reported" if c["target"] is None else f">= {c['target']:g}",
            c["passed"],
        )
        for c in speed["comparisons"]
    ]


def flops_rows(flops: dict[str, Any] | None) -> list[Row]:
    """Group 5: FLOPs per image of flexunet against flexunet-small."""
    if not flops:
        return []
    full, small = flops["flexunet"]["flops"], flops["flexunet-small"]["flops"]
    return [
        (
            "5 CPU preset",
            f"FLOPs per {FLOPS_SIZE}px image, flexunet / flexunet-small",
            f"{full / 1e9:.1f} / {small / 1e9:.1f} GFLOP = {flops['ratio']:.1f}",
            f">= {FLOPS_TARGET:g}",
            flops["ratio"] >= FLOPS_TARGET,
        )
    ]


def cross_domain_rows(cross: dict[str, Any] | None) -> list[Row]:
    """Issue 12's targets: in-lab figures kept, another lab's images, fine-tuning on 10 of them."""
    if not cross:
        return []
    table, tuned = cross["train_to_test"], {row["target_images"]: row for row in cross["fine_tuning_krd"]}

    def row(measure: str, value: float | None, target: float) -> Row:
        shown = "-" if value is None else f"{value:.3f}"
        return ("cross-domain", measure, shown, f">= {target}", None if value is None else value >= target)

    return [
        row("ds1 -> ds1 whole-cell Dice", table["ds1 -> ds1 held-out"]["object_dice"], 0.97),
        row("ds1 -> ds1 type accuracy", table["ds1 -> ds1 held-out"]["class_accuracy"], 0.88),
        row("ds1 -> KRD whole-cell Dice", table["ds1 -> KRD"]["object_dice"], 0.90),
        row("ds1 -> KRD type accuracy", table["ds1 -> KRD"]["class_accuracy"], 0.60),
        row("fine-tuned on 10 KRD: type accuracy", tuned.get(10, {}).get("class_accuracy"), 0.85),
        row("synthetic -> ds1 whole-cell Dice", table["synthetic -> ds1"]["object_dice"], 0.75),
        row("synthetic -> KRD whole-cell Dice", table["synthetic -> KRD"]["object_dice"], 0.75),
    ]


def zheng_rows(zheng: dict[str, Any] | None) -> list[Row]:
    """Group 5: the Zheng test figures of the small preset against the full model (reported only)."""
    if not zheng or not {"flexunet", "flexunet-small"} <= set(zheng["summary"]):
        return []
    summary = zheng["summary"]
    out: list[Row] = []
    for key, label in (("object_dice", "whole-cell Dice"), ("class_accuracy", "cell-type accuracy")):
        small, full = summary["flexunet-small"][key]["mean"], summary["flexunet"][key]["mean"]
        out.append(
            (
                "5 CPU preset",
                f"Zheng test {label}, small vs full (same budget)",
                f"{small:.3f} vs {full:.3f} ({small - full:+.3f})",
                "no loss (goal)",
                None,
            )
        )
    return out


def tiled_rows(tiled: list[dict[str, Any]] | None) -> list[Row]:
    """Group 6: seconds per megapixel of tiled inference as images grow, and peak RSS at the largest."""
    if not tiled:
        return []
    largest = tiled[-1]
    return [
        (
            "6 scaling",
            "tiled s/MP at " + "/".join(str(t["side"]) for t in tiled) + " px",
            ", ".join(f"{t['seconds_per_megapixel']:.2f}" for t in tiled),
            "not growing",
            largest["seconds_per_megapixel"] <= 1.10 * tiled[0]["seconds_per_megapixel"],
        ),
        (
            "6 scaling",
            f"peak RSS at {largest['side']} px",
            f"{largest['peak_rss_mb'] / 1024:.2f} GB",
            "< 3 GB",
            largest["peak_rss_mb"] < 3 * 1024,
        ),
    ]


def count_rows(inf: dict[str, Any]) -> list[Row]:
    """Group 6: how the time per added image changes with the number of images."""
    if inf.get("count_linearity") is None:
        return []
    return [
        (
            "6 scaling",
            "s per added image, last / first step of " + "/".join(str(c["images"]) for c in inf["counts"]),
            f"{inf['count_linearity']:.2f}",
            "<= 1.10",
            inf["count_linearity"] <= 1.10,
        )
    ]


def distributed_rows(dist: dict[str, Any] | None) -> list[Row]:
    """Issue 14: scaling efficiency of two workers on this machine, and the 8-GPU paper estimate (reported)."""
    if not dist:
        return []
    out: list[Row] = []
    for line in dist["efficiency"]:
        case, value = line.split(": ", 1)
        out.append(("distributed", f"{case} on this machine", value, "reported", None))
    for row in dist["estimate_8_gpus"]:
        if row["interconnect"].startswith(("NVLink", "Ethernet 10")):
            measure = f"8 GPUs, {row['model']}, {row['interconnect']} (estimate)"
            out.append(("distributed", measure, f"{row['speedup_8_gpus']:.1f}x", "reported", None))
    return out


def backend_rows(backends: dict[str, Any] | None) -> list[Row]:
    """Issue 13: ONNX Runtime against TensorFlow and the original-style loop, per run folder."""
    out: list[Row] = []
    for b in (backends or {}).values():
        name, best, tf_vs = b["model"]["model"], b["best"], b["tensorflow_vs_original"]
        tf, orig = best["tensorflow"], best["original"]
        out += [
            ("0 tensorflow", f"{name}: start-up, tensorflow / original-style",
             f"{tf['first_prediction_s']:.2f} / {orig['first_prediction_s']:.2f} s = {tf_vs['start_up']:.2f}",
             "< 1", tf_vs["start_up"] < 1),
            ("0 tensorflow", f"{name}: peak RSS, tensorflow / original-style",
             f"{tf['peak_rss_mb']:.0f} / {orig['peak_rss_mb']:.0f} MB = {tf_vs['peak_rss']:.2f}", "< 1",
             tf_vs["peak_rss"] < 1),
        ]  # fmt: skip
        if "onnx" not in best:
            out.append(("7 onnx", f"{name}: ONNX export", f"skipped: {b['export'].get('skipped')}", "", None))
            continue
        onnx, vs, agree = best["onnx"], b["onnx_vs"], b["agreement"]
        out += [
            ("7 onnx", f"{name}: start-up, onnx / tensorflow",
             f"{onnx['first_prediction_s']:.2f} / {tf['first_prediction_s']:.2f} s = {vs['start_up_tensorflow']:.2f}",
             "<= 0.2", vs["start_up_tensorflow"] <= 0.2),
            ("7 onnx", f"{name}: start-up, onnx / original-style", f"{vs['start_up_original']:.2f}", "<= 0.15",
             vs["start_up_original"] <= 0.15),
            ("7 onnx", f"{name}: per image, onnx / tensorflow",
             f"{onnx['seconds_per_image']:.3f} / {tf['seconds_per_image']:.3f} s = {vs['per_image_tensorflow']:.2f}",
             "<= 0.8", vs["per_image_tensorflow"] <= 0.8),
            ("7 onnx", f"{name}: max |p difference| onnx vs tensorflow", f"{agree['max_abs_difference']:.1e}",
             "<= 1e-4", agree["max_abs_difference"] <= 1e-4),
            ("7 onnx", f"{name}: same argmax", f"{agree['argmax_agreement']:.5%}", ">= 99.9 %",
             agree["argmax_agreement"] >= 0.999),
            ("7 onnx", f"{name}: peak RSS onnx / tensorflow",
             f"{onnx['peak_rss_mb']:.0f} / {tf['peak_rss_mb']:.0f} MB = {vs['peak_rss_tensorflow']:.2f}", "reported",
             None),
        ]  # fmt: skip
    return out


def render(table_rows: list[Row], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("group", "measure", "value", "target", "met"):
        table.add_column(column)
    for group, measure, value, target, met in table_rows:
        status = "-" if met is None else ("[green]yes[/]" if met else "[red]no[/]")
        table.add_row(group, measure, value, target, status)
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny models and data: checks every path, not speed")
    parser.add_argument("--skip", action="append", choices=SCRIPTS, default=[], help="leave a script out")
    parser.add_argument("--out", type=Path, help="results folder (default benchmarks/results/run-<time>)")
    parser.add_argument("--inference-work", type=Path, help="inference.py's cache of run folders and exports")
    parser.add_argument("--zheng-budget", type=float, default=15.0, help="training minutes per model (zheng)")
    args = parser.parse_args(argv)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or RESULTS / f"run-{'smoke-' if args.smoke else ''}{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    smoke = ["--smoke"] if args.smoke else []
    started = time.perf_counter()
    report: dict[str, Any] = {"benchmark": "run", "smoke": args.smoke, "started": stamp, "machine": machine()}
    results: dict[str, Any] = {"flops": preset_flops()}
    skipped: dict[str, str] = {name: "--skip" for name in args.skip}

    if "inference" not in skipped:
        work = ["--work", str(args.inference_work)] if args.inference_work else []
        run_script("inference", [*smoke, *work, "--out", str(out / "inference.json")], out / "inference.log")
        results["inference"] = json.loads((out / "inference.json").read_text())
    if "training" not in skipped:
        run_script("training", [*smoke, "--out", str(out / "training.json")], out / "training.log")
        results["training"] = json.loads((out / "training.json").read_text())
    if "zheng" not in skipped:
        if not ZHENG_DATA.is_dir():
            skipped["zheng"] = f"{ZHENG_DATA.resolve()} not found (the shared datasets are not beside the repo)"
            print(f"\nzheng: skipped, {skipped['zheng']}")
        else:
            zheng_args = [*smoke, "--compare", "--budget-minutes", str(args.zheng_budget)]
            if not args.smoke:
                zheng_args += ["--image-size", "128"]  # flexunet's 8 levels need multiples of 128
            run_script("zheng_accuracy", [*zheng_args, "--out", str(out / "zheng.json")], out / "zheng.log")
            results["zheng"] = json.loads((out / "zheng.json").read_text())

    if "cross_domain" not in skipped:
        if not ZHENG_DATA.is_dir():
            skipped["cross_domain"] = f"{ZHENG_DATA.resolve()} not found (the shared datasets are not beside the repo)"
        else:
            cross = [*smoke, "--out", str(out / "cross_domain.json"), "--work", str(out / "cross_domain-work")]
            run_script("cross_domain", cross, out / "cross_domain.log")
            results["cross_domain"] = json.loads((out / "cross_domain.json").read_text())

    if "distributed" not in skipped:
        run_script("distributed", [*smoke, "--out", str(out / "distributed.json")], out / "distributed.log")
        results["distributed"] = json.loads((out / "distributed.json").read_text())

    table_rows = rows(results)
    report.update(
        {
            "seconds": round(time.perf_counter() - started, 1),
            "load_average_end": load_average(),
            "skipped": skipped,
            "flops": results["flops"],
            "groups": [
                {"group": g, "measure": m, "value": v, "target": t, "met": met} for g, m, v, t, met in table_rows
            ],
            "files": sorted(p.name for p in out.glob("*.json")),
        }
    )
    render(table_rows, f"flexplat performance ({'smoke' if args.smoke else 'full'}; {report['seconds'] / 60:.0f} min)")
    if skipped:
        print("skipped: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    write_json(out / "summary.json", report)
    print(f"results: {out}")
    return report


if __name__ == "__main__":
    main()

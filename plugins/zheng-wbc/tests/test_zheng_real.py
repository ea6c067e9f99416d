"""On the real Zheng WBC Dataset 1 in ../shared (skipped when it is absent)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

EXPECTED_TYPES = {"neutrophil": 176, "lymphocyte": 53, "monocyte": 48, "eosinophil": 22, "basophil": 1}


def _check(project: str, root) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "FLEXPLAT_DISABLE_PLUGIN_AUTOLOAD"}
    args = [sys.executable, "-m", "flexplat", "data", "check", project, "--data", str(root), "--json"]
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(result.stdout)


def test_data_check_reports_300_pairs_and_the_type_counts(shared_dataset):
    report = _check("zheng-wbc", shared_dataset)
    assert report["ok"] and report["errors"] == [] and report["codec"] == "zheng-wbc"
    assert report["total_pairs"] == 300
    assert sum(s["usable"] for s in report["splits"].values()) == 300
    names = [c["name"] for c in report["classes"]]
    per_class = dict(zip(names, report["totals"]["class_images"], strict=True))
    assert per_class == {"background": 300, **EXPECTED_TYPES}
    # carved by image and stratified by type: the rarer types reach valid and test too
    for split in ("valid", "test"):
        counts = dict(zip(names, report["splits"][split]["class_images"], strict=True))
        assert counts["eosinophil"] >= 3 and counts["lymphocyte"] >= 7 and counts["monocyte"] >= 7
    sizes = Counter()
    for split in report["splits"].values():
        sizes.update({(s["height"], s["width"]): s["count"] for s in split["sizes"]})
    assert sum(sizes.values()) == 300 and sizes[(120, 120)] == 224


def test_parts_task_on_the_real_data(shared_dataset):
    report = _check("zheng-wbc-parts", shared_dataset)
    assert report["ok"] and report["total_pairs"] == 300
    assert report["totals"]["class_images"] == [300, 300, 300]
    background, cytoplasm, nucleus = report["totals"]["class_pixels"]
    assert background > cytoplasm > 0 and nucleus > 0


def test_every_mask_reads_in_both_tasks(shared_dataset):
    import numpy as np
    from flexplat_zheng_wbc.classes import class_table
    from flexplat_zheng_wbc.codec import ZhengCodec

    from flexplat import ClassInfo

    def codec(task):
        c = ZhengCodec([ClassInfo(e["name"], tuple(e["color"])) for e in class_table(task)], {"task": task})
        return c, c.scan("images", "masks", shared_dataset).pairs

    types, pairs = codec("type")
    parts, _ = codec("parts")
    assert len(pairs) == 300
    for pair in pairs[::15]:
        t, p = types.read_mask(pair).mask, parts.read_mask(pair).mask
        assert np.array_equal(t > 0, p > 0)  # the same cell, in both tasks
        assert len(np.unique(t)) == 2 and set(np.unique(p)) == {0, 1, 2}

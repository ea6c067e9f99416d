"""Fixtures: tiny generated datasets in the Zheng layout, and the real one in ../shared when present."""

from __future__ import annotations

from pathlib import Path

import pytest
from flexplat_zheng_wbc.testing import FakeImage, write_zheng_dataset

REPO = Path(__file__).resolve().parents[3]
SHARED_DATASET = REPO / ".." / "shared" / "datasets" / "zheng-wbc-ds1"


@pytest.fixture(scope="session")
def zheng_small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[FakeImage]]:
    """10 pairs, 3 image sizes, label numbers 1..5 twice (read-only: copy it before changing files)."""
    root = tmp_path_factory.mktemp("zheng") / "ds"
    return root, write_zheng_dataset(root, n=10)


@pytest.fixture
def zheng_copy(tmp_path: Path) -> tuple[Path, list[FakeImage]]:
    """A fresh 10-pair dataset a test may damage."""
    root = tmp_path / "ds"
    return root, write_zheng_dataset(root, n=10)


@pytest.fixture
def shared_dataset() -> Path:
    """The real Zheng WBC Dataset 1 (300 images), or skip when ../shared is not there."""
    if not (SHARED_DATASET / "class_labels.csv").is_file():
        pytest.skip(f"real dataset not present at {SHARED_DATASET.resolve()}")
    return SHARED_DATASET.resolve()

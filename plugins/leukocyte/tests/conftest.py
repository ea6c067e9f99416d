"""Fixtures: a fake LISC tree (see flexplat_leukocyte.testing) and one dataset generated from it."""

from __future__ import annotations

from pathlib import Path

import pytest
from flexplat_leukocyte.testing import FakeLisc, build_fake_lisc


@pytest.fixture(scope="session")
def fake_lisc(tmp_path_factory: pytest.TempPathFactory) -> FakeLisc:
    return build_fake_lisc(tmp_path_factory.mktemp("lisc") / "LISC")


@pytest.fixture(scope="session")
def lisc_576(tmp_path_factory: pytest.TempPathFactory, fake_lisc: FakeLisc) -> tuple[Path, dict]:
    """The fake LISC generated at 576 px (the crop side: no resize, pixel-exact comparisons)."""
    from flexplat_leukocyte.lisc import generate_lisc

    out = tmp_path_factory.mktemp("gen") / "lisc576"
    manifest = generate_lisc(fake_lisc.root, out, size=576, augment=("rot90", "barrel"), progress=False)
    return out, manifest

"""Meta-tests: every hook is documented with its exact signature and exercised by a test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from flexplat import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [name for name, fn in vars(hookspecs).items() if name.startswith("register_") and callable(fn)]


def test_hooks_found():
    assert set(HOOKS) == {
        "register_models",
        "register_codecs",
        "register_callbacks",
        "register_backgrounds",
        "register_projects",
        "register_commands",
    }


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_documented_with_exact_signature(hook):
    guide = (ROOT / "docs" / "writing-plugins.md").read_text(encoding="utf-8")
    signature = f"{hook}{inspect.signature(getattr(hookspecs, hook))}"
    assert re.search(rf"^### {re.escape(signature)}$", guide, re.M), f"docs/writing-plugins.md lacks '### {signature}'"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook):
    source = (ROOT / "tests" / "test_plugins.py").read_text(encoding="utf-8")
    assert f"def test_hook_{hook}(" in source

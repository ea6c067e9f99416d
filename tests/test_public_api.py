"""The public API is a contract: it resolves, it is documented, plugins use nothing else, and the
paths that docstrings and guides name exist."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import flexplat
from flexplat import testing

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "writing-plugins.md"
PUBLIC = {f"flexplat.{name}" for name in flexplat.__all__} | {f"flexplat.testing.{n}" for n in testing.__all__}
# a dotted name or a path starting at the package, not inside a longer word, path or name
DOTTED = re.compile(r"(?<![\w./-])flexplat(?:\.[A-Za-z_]\w*)+")
PATH = re.compile(r"(?<![\w./-])flexplat/[\w./-]*")


def plugin_files(suffix: str) -> list[Path]:
    """The shipped plugins' files (sources, tests, READMEs), without build metadata."""
    return [p for p in sorted(ROOT.glob(f"plugins/*/**/*{suffix}")) if ".egg-info" not in str(p)]


def docstrings(path: Path) -> Iterator[str]:
    """The module, class and function docstrings of one Python file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            text = ast.get_docstring(node)
            if text:
                yield text


def documented_names() -> set[str]:
    """The names the guide's "The public API" section lists, one ``- `flexplat.NAME...` `` line each."""
    section = GUIDE.read_text(encoding="utf-8").split("\n## The public API\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^- `(flexplat(?:\.\w+)+)", section, re.M))


def resolves(dotted: str) -> bool:
    """Whether ``flexplat.a.b`` names a module, or an attribute of one, that exists."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        try:
            found = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not f"{name}.".startswith(f"{exc.name}."):
                raise  # the module exists but needs something missing: a real failure
            continue
        for attr in parts[end:]:
            if not hasattr(found, attr):
                return False
            found = getattr(found, attr)
        return True
    return False


@pytest.mark.parametrize("module", [flexplat, testing], ids=lambda m: m.__name__)
def test_every_public_name_resolves_once(module):
    assert len(module.__all__) == len(set(module.__all__))
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"{module.__name__}.__all__ names what it does not define: {missing}"


def test_dir_lists_the_lazy_names_and_import_stays_light():
    assert set(flexplat.__all__) <= set(dir(flexplat))
    probe = "import sys, flexplat; print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'cv2', 'keras'}))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"


def test_the_guide_documents_exactly_the_public_api():
    documented = documented_names()
    assert not PUBLIC - documented, f"public but not in docs/writing-plugins.md: {sorted(PUBLIC - documented)}"
    assert not documented - PUBLIC, f"documented but not public: {sorted(documented - PUBLIC)}"


def test_plugins_and_the_guide_use_only_public_names():
    fixtures = sorted((ROOT / "tests" / "plugin_fixtures").glob("*.py"))  # written like a third party's
    sources = [GUIDE, *plugin_files(".py"), *plugin_files(".md"), *fixtures]
    allowed = PUBLIC | {"flexplat.__all__"}
    used = {
        (path.relative_to(ROOT).as_posix(), match)
        for path in sources
        for match in DOTTED.findall(path.read_text(encoding="utf-8"))
    }
    internal = sorted(
        (where, name) for where, name in used if not any(name == p or name.startswith(f"{p}.") for p in allowed)
    )
    assert not internal, f"internal flexplat names used (make them public or stop using them): {internal}"


def test_docstrings_and_guides_name_paths_that_exist():
    python = [*sorted((ROOT / "flexplat").rglob("*.py")), *plugin_files(".py")]
    texts = [(p, text) for p in python for text in docstrings(p)]
    markdown = [[ROOT / "README.md"], GUIDE.parent.glob("*.md"), (ROOT / "flexplat").rglob("*.md")]
    markdown += [(ROOT / "projects").rglob("*.md"), plugin_files(".md")]
    texts += [(p, p.read_text(encoding="utf-8")) for paths in markdown for p in paths]
    broken = set()
    for path, text in texts:
        where = path.relative_to(ROOT).as_posix()
        broken |= {(where, name) for name in DOTTED.findall(text) if not resolves(name)}
        broken |= {(where, ref) for ref in PATH.findall(text) if not (ROOT / ref.rstrip(".")).exists()}
    assert not broken, f"names or paths that do not exist: {sorted(broken)}"

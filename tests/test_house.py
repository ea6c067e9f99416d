"""House rules that keep the core in order: short functions, one-way layers, shared CLI options."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flexplat.cli import cli

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "flexplat"
MAX_FUNCTION_LINES = 80
CONFIG_COMMANDS = (("config", "show"), ("train",), ("data", "check"))


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method in ``tree`` with its qualified name (``Class.method``, ``outer.inner``)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield prefix + node.name, node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def _long_functions(root: Path, limit: int) -> list[tuple[str, str, int, int]]:
    """(path, name, first line, length) of each function under ``root`` longer than ``limit`` lines.

    A function's length runs from its ``def`` line to its last line, docstring and body included;
    paths start with ``root``'s own name (``flexplat/...``).
    """
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent).as_posix()
        for name, node in _functions(ast.parse(path.read_text(encoding="utf-8"), filename=relative)):
            length = node.end_lineno - node.lineno + 1
            if length > limit:
                found.append((relative, name, node.lineno, length))
    return found


def test_the_length_check_measures_def_to_last_line_and_names_methods(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    source = "class A:\n    def short(self):\n        pass\n\n    def long(self):\n" + "        x = 1\n" * 4
    (package / "m.py").write_text(source)
    assert _long_functions(package, 4) == [("pkg/m.py", "A.long", 5, 5)]
    assert _long_functions(package, 5) == []


def test_no_function_under_flexplat_is_longer_than_80_lines():
    too_long = [
        f"{path}:{line} {name} has {length} lines"
        for path, name, line, length in _long_functions(CORE, MAX_FUNCTION_LINES)
    ]
    assert not too_long, f"split these along their stages (at most {MAX_FUNCTION_LINES} lines):\n" + "\n".join(too_long)


def _lint_imports() -> str | None:
    """The lint-imports beside this Python (the venv's), else one on PATH, else None."""
    beside = Path(sys.executable).with_name("lint-imports")
    return str(beside) if beside.is_file() else shutil.which("lint-imports")


def test_import_linter_contract_of_make_lint_passes():
    lint_imports = _lint_imports()
    if lint_imports is None:
        pytest.skip("lint-imports is not installed (pip install -e '.[dev]')")
    done = subprocess.run([lint_imports, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _command(path: tuple[str, ...]):
    command = cli
    for name in path:
        command = command.commands[name]
    return command


def test_config_reading_commands_share_one_config_and_set_option_pair():
    seen = set()
    for path in CONFIG_COMMANDS:
        options = {p.name: p for p in _command(path).params}
        config, sets = options["config_file"], options["sets"]
        assert config.opts == ["--config"] and sets.opts == ["--set"] and sets.multiple, path
        seen.add((config.help, sets.help, sets.metavar))
    assert len(seen) == 1, seen

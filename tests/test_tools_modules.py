"""The tools are a package run as modules from the repository root (`python -m tools.<name>`), never scripts that
patch `sys.path` to reach the checkout (issue 38)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import tools
from tests.conftest import REPO


def touches_sys_path(path: Path) -> list[int]:
    """Lines of `path` that read or change `sys.path` (`sys.path.insert(...)`, `from sys import path`), found with ast:
    a comment or a string that mentions it does not count."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name) and node.value.id == "sys":
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "sys" and any(alias.name == "path" for alias in node.names):
            lines.append(node.lineno)
    return lines


def test_no_tool_touches_sys_path():
    found = {path.name: lines for path in sorted((REPO / "tools").glob("*.py")) if (lines := touches_sys_path(path))}
    assert found == {}, f"tools that patch sys.path (file: lines): {found}"


def test_a_sys_path_insert_is_caught_but_a_comment_is_not(tmp_path):
    (tmp_path / "a.py").write_text("import sys\nfrom pathlib import Path\n\nsys.path.insert(0, str(Path(__file__).parent))\n")
    (tmp_path / "b.py").write_text("from sys import path\n")
    (tmp_path / "c.py").write_text('"""Never sys.path.insert(0, ...)."""\n\nimport sys  # not sys.path\n\nprint(sys.argv)\n')
    assert [touches_sys_path(tmp_path / name) for name in ("a.py", "b.py", "c.py")] == [[4], [1], []]


def test_tools_is_a_package_whose_tools_run_as_modules_from_the_repository_root():
    assert tools.__file__ is not None and Path(tools.__file__).parent == REPO / "tools"  # a package, not a namespace
    run = subprocess.run([sys.executable, "-m", "tools.config_reference", "--help"], capture_output=True, text=True, cwd=REPO,
                         timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "configuration reference" in run.stdout

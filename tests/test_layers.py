"""The dependency rule, read from the source with ast: every import, lazy ones inside functions included.

Lowest first: models/ < edge.core < edge.reporting < edge.web < edge.daemon < edge.bench < edge.cli / edge.commands / edge.doctor;
sync_agent/ builds on edge.core and edge.reporting only; nothing of ours imports tools/.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

TOP = ("edge.cli", "edge.commands", "edge.doctor", "tools")
FORBIDDEN = {  # package -> what no module under it may import
    "models": ("edge", "sync_agent", "tools"),
    "edge.core": ("edge.reporting", "edge.web", "edge.daemon", "edge.bench", "sync_agent", *TOP),
    "edge.reporting": ("edge.web", "edge.daemon", "edge.bench", "sync_agent", *TOP),
    "edge.web": ("edge.daemon", "edge.bench", "sync_agent", *TOP),
    "edge.daemon": ("edge.bench", "sync_agent", *TOP),
    "edge.bench": ("sync_agent", *TOP),
    "sync_agent": ("edge.web", "edge.daemon", "edge.bench", *TOP),
}


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from edge import daemon` is edge.daemon
    return found


def under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(root: Path) -> list[str]:
    """`module imports forbidden` for every import that breaks the rule, under `root` (a checkout)."""
    found = []
    for package in ("models", "edge", "sync_agent"):
        for path in sorted((root / package).rglob("*.py")):
            module = module_name(root, path)
            for rule, banned in FORBIDDEN.items():
                if not under(module, rule):
                    continue
                found += [f"{module} imports {name}" for name in imports(path) if any(under(name, b) for b in banned)]
    return sorted(found)


def test_the_tree_keeps_the_dependency_rule():
    assert violations(REPO) == []


def test_a_forbidden_import_is_caught_even_inside_a_function(tmp_path):
    for package in ("edge/core", "edge/daemon", "models", "sync_agent"):
        (tmp_path / package).mkdir(parents=True)
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "edge" / "__init__.py").write_text("")
    (tmp_path / "edge/core/identify.py").write_text("from edge.core import config\n\ndef f():\n    from edge.web import page\n")
    (tmp_path / "edge/daemon/run.py").write_text("import sync_agent.agent\nfrom edge.reporting import outbox\n")
    (tmp_path / "models/export.py").write_text("from edge import daemon\n")
    (tmp_path / "sync_agent/agent.py").write_text("from edge.core.catalog import load_catalog\nfrom tools import soak\n")
    assert violations(tmp_path) == ["edge.core.identify imports edge.web", "edge.core.identify imports edge.web.page",
                                    "edge.daemon.run imports sync_agent.agent", "models.export imports edge",
                                    "models.export imports edge.daemon", "sync_agent.agent imports tools",
                                    "sync_agent.agent imports tools.soak"]

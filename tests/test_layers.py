"""The dependency rule, read from the source with ast: every import, lazy ones inside functions included.

Lowest first: models/ < edge.core < edge.reporting < edge.web < edge.daemon < edge.bench < edge.cli / edge.commands / edge.doctor;
sync_agent/ builds on edge.core and edge.reporting only; nothing of ours imports tools/.
The device side (edge/ and sync_agent's device modules) never imports the central one (sync_agent.server); the server
may use the device's modules (the bundle format, signing, install), and sync_agent.commands, the CLI of both, may use both.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

TOP = ("edge.cli", "edge.commands", "edge.doctor", "tools")
# sync_agent's device modules (and review, the catalog managers' HTTP client): none may import sync_agent.server
DEVICE = ("agent", "announce", "bundle", "errors", "fetcher", "install", "review", "signing", "trust", "uploader")
FORBIDDEN = {  # package -> what no module under it may import
    "models": ("edge", "sync_agent", "tools"),
    "edge.core": ("edge.reporting", "edge.web", "edge.daemon", "edge.bench", "sync_agent", *TOP),
    "edge.reporting": ("edge.web", "edge.daemon", "edge.bench", "sync_agent", *TOP),
    "edge.web": ("edge.daemon", "edge.bench", "sync_agent", *TOP),
    "edge.daemon": ("edge.bench", "sync_agent", *TOP),
    "edge.bench": ("sync_agent", *TOP),
    "sync_agent": ("edge.web", "edge.daemon", "edge.bench", *TOP),
    "edge": ("sync_agent.server",),
    **{f"sync_agent.{name}": ("sync_agent.server",) for name in DEVICE},
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
    return sorted(set(found))  # a module under two rules that ban the same import is one violation


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


def test_every_sync_agent_module_is_on_one_side():
    """A new module beside the agent is a device module (listed in DEVICE) or goes under sync_agent/server/."""
    outside = {path.stem for path in (REPO / "sync_agent").glob("*.py")} - {"__init__", "commands"}
    assert outside == set(DEVICE)


def test_the_device_side_importing_the_server_is_caught(tmp_path):
    for package in ("edge", "sync_agent", "sync_agent/server"):
        (tmp_path / package).mkdir(parents=True)
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "edge/doctor.py").write_text("from sync_agent.fetcher import fetcher_for\nfrom sync_agent.server.storage import Storage\n")
    (tmp_path / "sync_agent/agent.py").write_text("from sync_agent.bundle import blob_key\n\ndef f():\n    import sync_agent.server.app\n")
    (tmp_path / "sync_agent/commands.py").write_text("def serve():\n    from sync_agent.server.app import create_app\n")
    (tmp_path / "sync_agent/server/detect.py").write_text("from sync_agent.install import install_bundle\n")
    assert violations(tmp_path) == ["edge.doctor imports sync_agent.server.storage", "edge.doctor imports sync_agent.server.storage.Storage",
                                    "sync_agent.agent imports sync_agent.server.app"]

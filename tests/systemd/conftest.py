"""The installer, run once per session into a disposable root."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import REPO


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which files each test under its group
def pytest_collection_modifyitems(items) -> None:
    """Every test of the installed root on one xdist worker (`make test` runs --dist loadgroup): the root is made once
    per worker, and pip builds this checkout in place (its build/ folder), so installers on two workers collide."""
    for item in items:
        if "installed_root" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("installer"))


@pytest.fixture(scope="session")
def installed_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    run = subprocess.run(["bash", str(REPO / "tools" / "install.sh"), "--root", str(root)], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return root

"""The installer, run once per session into a disposable root."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="session")
def installed_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    run = subprocess.run(["bash", str(REPO / "tools" / "install.sh"), "--root", str(root)], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return root

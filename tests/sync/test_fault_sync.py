"""kill -9 of the real agent at 20 points spread across a sync: `current` always loads, and the next run completes."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO


def test_sigkill_at_twenty_points_never_leaves_a_broken_current(tmp_path):
    run = subprocess.run([sys.executable, "-m", "tools.fault_sync", "--kills", "20", "--work", str(tmp_path / "work")],
                         capture_output=True, text=True, cwd=REPO, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "kills=20 always_loadable=20 completed=20"
    killed = int(re.search(r"killed mid-sync (\d+) times", run.stdout).group(1))
    assert killed >= 10  # most kill points land inside a sync, not after it ended

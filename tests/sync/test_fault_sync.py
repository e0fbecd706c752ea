"""kill -9 of the real agent at 10 points spread across a sync (`python -m tools.fault_sync` kills at 50 by hand):
`current` always loads, and the next run completes."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO


def test_sigkill_at_ten_points_never_leaves_a_broken_current(tmp_path):
    run = subprocess.run([sys.executable, "-m", "tools.fault_sync", "--kills", "10", "--work", str(tmp_path / "work")],
                         capture_output=True, text=True, cwd=REPO, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "kills=10 always_loadable=10 completed=10"
    killed = int(re.search(r"killed mid-sync (\d+) times", run.stdout).group(1))
    assert killed >= 5  # most kill points land inside a sync, not after it ended

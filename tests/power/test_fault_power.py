"""The short version of tools/fault_power.py: 51 power cuts (17 per workload) of the outbox under load, the sync agent
and the catalog server's store; nothing acknowledged lost, nothing corrupt."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO
from tests.power.conftest import needs_fuse

pytestmark = needs_fuse


def test_51_power_cuts_lose_no_acknowledged_event_and_leave_everything_loadable(tmp_path):
    run = subprocess.run([sys.executable, "-m", "tools.fault_power", "--cuts", "51", "--window", "0.4", "--server-window", "3",
                          "--work", str(tmp_path / "work")], cwd=REPO, capture_output=True, text=True, timeout=600)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    numbers = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", summary)}
    assert run.returncode == 0, f"{summary}\n{run.stderr[-3000:]}"
    assert numbers["cuts"] == 51 and numbers["lost"] == numbers["corrupt"] == numbers["duplicates_not_marked_replayed"] == 0
    assert numbers["outboxes_opened"] == numbers["stores_opened"] == 17  # every cut of each was checked after the reboot
    assert numbers["events_acknowledged"] > 0 and numbers["syncs_done"] > 0

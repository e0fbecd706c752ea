"""The systemd units: the settings that keep a shelf device alive and contained are there, and systemd accepts them."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import REPO

UNITS = REPO / "systemd"
HARDENING = ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "RestrictAddressFamilies", "SystemCallFilter",
             "CapabilityBoundingSet", "ProtectKernelTunables", "ProtectControlGroups", "RestrictSUIDSGID", "LockPersonality")


def parse(path: Path) -> dict[str, dict[str, list[str]]]:
    """section -> key -> values (systemd allows a key more than once)."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section, text = None, re.sub(r"\\\n\s*", " ", path.read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        sections[section][key].append(value)
    return sections


def test_the_edge_service_is_a_watched_notify_service_that_restarts_within_limits():
    unit = parse(UNITS / "shelfid-edge.service")
    service = unit["Service"]
    assert service["Type"] == ["notify"] and service["NotifyAccess"] == ["main"]
    assert int(service["WatchdogSec"][0]) > 0
    assert service["Restart"] == ["on-failure"]
    assert int(unit["Unit"]["StartLimitBurst"][0]) >= 3 and int(unit["Unit"]["StartLimitIntervalSec"][0]) > 0
    assert service["User"] == ["shelfid"] and "video" in service["SupplementaryGroups"][0].split()
    assert service["StateDirectory"] == ["shelfid"] and service["CacheDirectory"] == ["shelfid"]
    assert service["ConfigurationDirectory"] == ["shelfid"]
    assert {c.split(":")[0] for c in service["LoadCredential"]} == {"mqtt-password", "sync-token", "web-token"}
    assert service["DevicePolicy"] == ["closed"] and "char-video4linux rw" in service["DeviceAllow"]
    assert any(d.startswith("/dev/nvmap") for d in service["DeviceAllow"])  # Jetson GPU memory


@pytest.mark.parametrize("name", ["shelfid-edge.service", "shelfid-sync.service", "shelfid-catalog.service"])
def test_every_service_is_hardened_and_every_hardening_line_is_explained(name):
    service = parse(UNITS / name)["Service"]
    for key in HARDENING:
        assert key in service, f"{name}: {key} missing"
    assert service["ProtectSystem"] == ["strict"] and "@system-service" in service["SystemCallFilter"]
    assert set(service["RestrictAddressFamilies"][0].split()) <= {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    lines = (UNITS / name).read_text().splitlines()
    start = lines.index("# --- hardening: each line says when to relax it ---")
    for i, line in enumerate(lines[start + 1:], start + 1):
        if line and not line.startswith(("#", "[")) and line.split("=")[0] in HARDENING + ("DeviceAllow", "MemoryDenyWriteExecute"):
            above = next(lines[j] for j in range(i - 1, start - 1, -1) if not re.match(r"^[A-Za-z]+=", lines[j]))
            assert above.startswith("#"), f"{name}: {line!r} has no comment above its group"


def test_sync_runs_as_a_oneshot_from_a_persistent_randomised_timer_and_from_the_push_trigger():
    assert parse(UNITS / "shelfid-sync.service")["Service"]["Type"] == ["oneshot"]
    timer = parse(UNITS / "shelfid-sync.timer")["Timer"]
    assert timer["Persistent"] == ["true"] and timer["RandomizedDelaySec"] and timer["OnUnitActiveSec"]
    path = parse(UNITS / "shelfid-sync.path")["Path"]
    assert path["PathModified"] == ["/var/lib/shelfid/sync/trigger"] and path["Unit"] == ["shelfid-sync.service"]
    edge = parse(UNITS / "shelfid-edge.service")["Service"]["ExecStart"][0]
    sync = parse(UNITS / "shelfid-sync.service")["Service"]["ExecStart"][0]
    assert edge.endswith("run --config /etc/shelfid/config.yaml") and "sync --once --config /etc/shelfid/config.yaml" in sync


def test_the_daemons_push_trigger_is_the_file_the_path_unit_watches(tmp_path):
    from edge.core.config import Config
    from edge.daemon.run import trigger_sync

    config = Config.model_validate({"device": {"data_dir": str(tmp_path)}})
    written = trigger_sync(config, 4)
    watched = parse(UNITS / "shelfid-sync.path")["Path"]["PathModified"][0]
    assert str(written.relative_to(tmp_path)) == str(Path(watched).relative_to("/var/lib/shelfid"))
    assert '"version": 4' in written.read_text()


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze is missing: `make test` installs systemd"
    return found


def test_systemd_accepts_every_unit(installed_root, tmp_path):
    """`systemd-analyze verify` on the units as installed (ExecStart pointed into the disposable root)."""
    for unit in sorted(UNITS.iterdir()):
        text = unit.read_text().replace("/opt/shelfid/", f"{installed_root}/opt/shelfid/")
        (tmp_path / unit.name).write_text(text)
    run = subprocess.run([systemd_analyze(), "verify", "--man=no", *sorted(p.name for p in tmp_path.iterdir())], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 0 and not run.stderr.strip(), run.stderr


@pytest.mark.parametrize("name", ["shelfid-edge.service", "shelfid-sync.service", "shelfid-catalog.service"])
def test_exposure_score_is_at_most_three(name):
    run = subprocess.run([systemd_analyze(), "security", "--offline=true", str(UNITS / name)], capture_output=True, text=True)
    score = re.search(r"Overall exposure level for \S+: ([\d.]+)", run.stdout)
    assert score, run.stdout[-500:] + run.stderr
    assert float(score.group(1)) <= 3.0

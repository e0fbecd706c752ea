"""READY=1 once the models are warm, WATCHDOG=1 once per processed frame, over the real notify socket protocol."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from edge.sdnotify import notify
from tests.conftest import REPO


def test_notify_without_systemd_is_a_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False


def test_daemon_says_ready_after_warm_up_and_pings_only_per_processed_frame(tmp_path):
    address = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("frame_0000.jpg", "frame_0150.jpg"):
        (frames / name).write_bytes((REPO / "samples" / "shelf" / name).read_bytes())
    catalog = tmp_path / "catalog"
    assert subprocess.run([sys.executable, "-m", "edge.cli", "catalog", "build", str(REPO / "samples" / "shelf-catalog"), "--out",
                           str(catalog)], capture_output=True, cwd=REPO).returncode == 0
    config = tmp_path / "c.yaml"
    config.write_text(f"device:\n  data_dir: {tmp_path / 'data'}\ncamera:\n  source: {frames}\n  realtime: false\nmqtt:\n  enabled: false\n")
    run = subprocess.run([sys.executable, "-m", "edge.cli", "run", "--config", str(config), "--catalog", str(catalog)],
                         capture_output=True, text=True, cwd=REPO, env={**os.environ, "NOTIFY_SOCKET": address}, timeout=300)
    assert run.returncode == 0, run.stderr[-1500:]
    sock.setblocking(False)
    messages = []
    while True:
        try:
            messages.append(sock.recv(256).decode())
        except BlockingIOError:
            break
    assert messages[0] == "READY=1"
    assert messages.count("WATCHDOG=1") == 2  # two frames processed, two pings; none while loading or after the end
    assert messages[-1] == "STOPPING=1"
    assert "started: device" in run.stderr  # the start-up summary line for operators

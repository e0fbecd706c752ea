"""`shelfid doctor` on a working device and on a broken one: a readable report, the right exit code, what to fix."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone

from edge.doctor import check_clock
from tests.conftest import REPO
from tools.mqtt_harness import Broker, free_port


def doctor(config: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", "doctor", "--config", config, *extra], capture_output=True, text=True,
                          cwd=REPO, timeout=300)


def test_a_working_device_passes_every_check(tmp_path):
    data = tmp_path / "data"
    (data / "catalogs").mkdir(parents=True)
    build = subprocess.run([sys.executable, "-m", "edge.cli", "catalog", "build", str(REPO / "samples" / "shelf-catalog"), "--out",
                            str(data / "catalogs" / "v1"), "--catalog-id", "shelf"], capture_output=True, text=True, cwd=REPO)
    assert build.returncode == 0, build.stderr
    os.symlink("v1", data / "catalogs" / "current")
    broker = Broker(tmp_path / "broker").start()
    try:
        config = tmp_path / "c.yaml"
        config.write_text(f"device: {{id: shelf-7, data_dir: {data}}}\ncamera: {{source: {REPO / 'samples' / 'shelf.mp4'}}}\n"
                          f"mqtt: {{host: 127.0.0.1, port: {broker.port}}}\n")
        run = doctor(str(config))
    finally:
        broker.kill()
    assert run.returncode == 0, run.stdout + run.stderr[-1500:]
    lines = run.stdout.splitlines()
    for name in ("camera", "models", "engine cache", "catalog", "broker", "outbox", "sync", "page", "disk", "clock"):
        assert any(line.startswith("[ok  ] " + name) for line in lines), (name, run.stdout)
    assert "640×360 frame read" in run.stdout and "shelf v1: 3 products" in run.stdout
    assert "10 checks: 0 failed, 0 warnings — ready to run" in run.stdout


def test_a_broken_device_gets_each_problem_with_its_fix(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"device: {{id: shelf-8, data_dir: {tmp_path / 'data'}}}\ncamera: {{source: {tmp_path / 'missing.mp4'}}}\n"
                      f"mqtt: {{host: 127.0.0.1, port: {free_port()}}}\n")
    run = doctor(str(config))
    assert run.returncode == 1
    out = run.stdout
    assert "[FAIL] camera" in out and "no video file at" in out
    assert "[FAIL] catalog" in out and "catalogs/current: no active catalog" in out
    assert "[FAIL] broker" in out and "Connection refused" in out
    assert out.count("fix: ") >= 3 and "3 failed" in out
    assert "[ok  ] models" in out  # one broken part does not hide the others


def test_a_refused_login_and_a_skipped_check(tmp_path):
    broker = Broker(tmp_path / "broker", users={"shelf": "right"}).start()
    (tmp_path / "pw").write_text("wrong\n")
    config = tmp_path / "c.yaml"
    config.write_text(f"device: {{id: shelf-9, data_dir: {tmp_path / 'data'}}}\n"
                      f"mqtt: {{host: 127.0.0.1, port: {broker.port}, username: shelf, password_file: {tmp_path / 'pw'}}}\n")
    try:
        run = doctor(str(config), "--skip", "camera,models")
    finally:
        broker.kill()
    assert "[FAIL] broker" in run.stdout and "connection refused" in run.stdout and "password" in run.stdout
    assert "camera" not in run.stdout.split("\n")[0] and "[ok  ] models" not in run.stdout


def test_a_clock_before_the_release_fails():
    assert check_clock(datetime(2020, 1, 1, tzinfo=timezone.utc)).state == "fail"
    assert check_clock(datetime(2027, 1, 1, tzinfo=timezone.utc)).state == "ok"

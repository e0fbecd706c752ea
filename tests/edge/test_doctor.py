"""`shelfid doctor` on a working device and on a broken one: a readable report, the right exit code, what to fix."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from edge.core.config import Config
from edge.doctor import check_clock, unit_credentials
from tests.conftest import REPO
from tools.mqtt_harness import Broker, free_port


def doctor(config: str, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CREDENTIALS_DIRECTORY", "SHELFID_MQTT_PASSWORD")}  # run by hand
    return subprocess.run([sys.executable, "-m", "edge.cli", "doctor", "--config", config, *extra], capture_output=True, text=True,
                          cwd=REPO, timeout=300, env=env)


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
    for name in ("camera", "models", "engine cache", "catalog", "credentials", "broker", "outbox", "sync", "page", "disk", "clock"):
        assert any(line.startswith("[ok  ] " + name) for line in lines), (name, run.stdout)
    assert "640×360 frame read" in run.stdout and "shelf v1: 3 products" in run.stdout
    assert "11 checks: 0 failed, 0 warnings — ready to run" in run.stdout


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


def test_run_by_hand_the_doctor_reads_the_password_the_unit_hands_over(tmp_path):
    """Installed: the broker password is the credential /etc/shelfid/credentials/mqtt-password (LoadCredential=), not a
    config key; a doctor run by hand as root logs in with it instead of failing "Not authorized"."""
    broker = Broker(tmp_path / "broker", users={"shelf-10": "right"}).start()
    etc = tmp_path / "etc"
    (etc / "credentials").mkdir(parents=True)
    (etc / "credentials" / "mqtt-password").write_text("right\n")
    (etc / "credentials").chmod(0o700)
    (etc / "config.yaml").write_text(f"device: {{id: shelf-10, data_dir: {tmp_path / 'data'}}}\n"
                                     f"mqtt: {{host: 127.0.0.1, port: {broker.port}, username: shelf-10}}\n")
    try:
        run = doctor(str(etc / "config.yaml"), "--skip", "camera,models,catalog")
    finally:
        broker.kill()
    assert "[ok  ] broker" in run.stdout, run.stdout
    assert f"[ok  ] credentials  mqtt-password read from {etc / 'credentials'}, as the service gets them" in run.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="switches its effective uid to play a user who cannot read the credentials")
def test_a_user_who_cannot_read_the_credentials_is_told_so_and_how_to_run_it(tmp_path, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("SHELFID_MQTT_PASSWORD", raising=False)
    folder = tmp_path / "credentials"
    folder.mkdir(mode=0o700)
    (folder / "mqtt-password").write_text("right\n")
    (folder / "mqtt-password").chmod(0o600)
    config = Config.model_validate({"mqtt": {"username": "shelf"}})
    os.seteuid(65534)  # nobody, as `sudo -u shelfid shelfid doctor` would be
    try:
        seen, found = unit_credentials(config, folder)
    finally:
        os.seteuid(0)
    assert found.state == "warn" and "cannot read mqtt-password" in found.detail and "sudo shelfid doctor" in found.fix
    assert seen.mqtt.password_file is None


def test_inside_the_service_its_own_credentials_are_used(tmp_path, monkeypatch):
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    (tmp_path / "credentials").mkdir()
    (tmp_path / "credentials" / "mqtt-password").write_text("x")
    config = Config.model_validate({"mqtt": {"username": "shelf"}})
    seen, found = unit_credentials(config, tmp_path / "credentials")
    assert seen is config and found.state == "ok" and str(tmp_path) in found.detail

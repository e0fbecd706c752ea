"""--log-level wins over the config's logging.level, which wins over INFO: the real CLI, run and sync, in subprocesses."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO, SAMPLES

CHOSEN = "edge.logs: log level"  # the DEBUG line that says which level won and why


def shelfid(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=300)


@pytest.fixture
def run_config(tmp_path) -> Callable[[str], Path]:
    """A config for `run` on one sample frame, MQTT off, that logs at `level`."""
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "frame_0000.jpg").write_bytes((SAMPLES / "frame_0000.jpg").read_bytes())

    def write(level: str) -> Path:
        config = tmp_path / f"{level}.yaml"
        config.write_text(f"device:\n  data_dir: {tmp_path / 'data'}\ncamera:\n  source: {frames}\n  realtime: false\n"
                          f"mqtt:\n  enabled: false\nlogging:\n  level: {level}\n")
        return config

    return write


def test_run_logs_at_the_flags_level_over_the_configs(run_config, sample_catalog_dir):
    run = shelfid("--log-level", "DEBUG", "run", "--config", str(run_config("WARNING")), "--catalog", str(sample_catalog_dir))
    assert run.returncode == 0, run.stderr[-1500:]
    assert f"{CHOSEN} DEBUG, from --log-level (logging.level in the config: WARNING)" in run.stderr
    assert "started: device" in run.stderr  # INFO, below the config's WARNING


def test_run_logs_at_the_configs_level_without_the_flag(run_config, sample_catalog_dir):
    run = shelfid("run", "--config", str(run_config("DEBUG")), "--catalog", str(sample_catalog_dir))
    assert run.returncode == 0, run.stderr[-1500:]
    assert f"{CHOSEN} DEBUG, from the config" in run.stderr


def test_a_quieter_flag_also_wins_over_a_chattier_config(run_config, sample_catalog_dir):
    run = shelfid("--log-level", "WARNING", "run", "--config", str(run_config("DEBUG")), "--catalog", str(sample_catalog_dir))
    assert run.returncode == 0, run.stderr[-1500:]
    assert CHOSEN not in run.stderr and "started: device" not in run.stderr


def test_sync_logs_at_the_flags_level_over_the_configs(tmp_path):
    assert shelfid("catalog", "keygen", "--out", str(tmp_path / "keys")).returncode == 0
    config = tmp_path / "c.yaml"
    config.write_text(f"device:\n  data_dir: {tmp_path / 'data'}\nmqtt:\n  enabled: false\nsync:\n"
                      f"  server_url: http://127.0.0.1:9/\n  public_key_file: {tmp_path / 'keys' / 'signing-key.pub.pem'}\n"
                      "logging:\n  level: WARNING\n")
    sync = shelfid("--log-level", "DEBUG", "sync", "--once", "--config", str(config))
    assert sync.returncode == 1 and "not reachable" in sync.stderr  # the discard port: nothing listens, it fails at once
    assert f"{CHOSEN} DEBUG, from --log-level (logging.level in the config: WARNING)" in sync.stderr
    assert "sync: checking http://127.0.0.1:9 for catalog" in sync.stderr  # INFO, below the config's WARNING

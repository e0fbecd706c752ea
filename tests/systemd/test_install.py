"""tools/install.sh end to end in a disposable root, twice (idempotent), and tools/uninstall.sh after it."""

from __future__ import annotations

import hashlib
import os
import subprocess

from tests.conftest import REPO


def tree(root) -> dict[str, str]:
    """path -> content hash (symlinks: their target) of what the installer manages, the venv aside."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "venv"]
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            out[rel] = os.readlink(path) if os.path.islink(path) else hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out


def install(root, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "tools" / "install.sh"), "--root", str(root), *extra], capture_output=True, text=True,
                          timeout=900)


def test_the_installer_sets_up_user_config_units_and_a_working_venv(installed_root):
    root = installed_root
    assert "shelfid:x:" in (root / "etc" / "passwd").read_text()
    video = [line for line in (root / "etc" / "group").read_text().splitlines() if line.startswith("video:")]
    assert video and "shelfid" in video[0].split(":")[3].split(",")
    config = (root / "etc" / "shelfid" / "config.yaml").read_text()
    assert "data_dir: /var/lib/shelfid" in config and "engine_cache_dir: /var/cache/shelfid/engines" in config
    credentials = root / "etc" / "shelfid" / "credentials"
    assert oct(credentials.stat().st_mode & 0o777) == "0o700" and (credentials / "mqtt-password").exists()
    wants = root / "etc" / "systemd" / "system" / "multi-user.target.wants"
    assert os.readlink(wants / "shelfid-edge.service") == "/etc/systemd/system/shelfid-edge.service"
    assert (root / "etc" / "systemd" / "system" / "timers.target.wants" / "shelfid-sync.timer").is_symlink()
    shelfid = root / "opt" / "shelfid" / "venv" / "bin" / "shelfid"
    check = subprocess.run([str(shelfid), "check-config", str(root / "etc" / "shelfid" / "config.yaml")], capture_output=True, text=True)
    assert check.returncode == 0 and "valid" in check.stdout
    info = subprocess.run([str(shelfid), "models", "info", str(next((root / "opt").rglob("models/weights/embedder.onnx")))],
                          capture_output=True, text=True)
    assert info.returncode == 0 and '"kind": "embedder"' in info.stdout  # the installed package carries its models
    detector = subprocess.run([str(shelfid), "models", "info", str(next((root / "opt").rglob("models/weights/product-detector-320.onnx")))],
                              capture_output=True, text=True)
    assert detector.returncode == 0 and '"names": "[\\"product\\"]"' in detector.stdout


def test_a_second_run_changes_nothing_and_keeps_an_edited_config(installed_root):
    config = installed_root / "etc" / "shelfid" / "config.yaml"
    config.write_text(config.read_text().replace("id: shelf-001", "id: aisle-7-left"))
    before = tree(installed_root)
    run = install(installed_root)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "kept " in run.stdout and tree(installed_root) == before
    assert "id: aisle-7-left" in config.read_text()
    assert_next_steps_work_as_written(installed_root, run.stdout)


def assert_next_steps_work_as_written(root, output: str) -> None:
    """The installer's last words: `shelfid` is on PATH (a link into the venv), and the first sync comes before the
    doctor (a new device has no catalog until it syncs, so a doctor first always shows a FAIL)."""
    assert os.readlink(root / "usr" / "local" / "bin" / "shelfid") == "/opt/shelfid/venv/bin/shelfid"
    steps = output[output.index("done. Next:"):]
    assert "systemctl start shelfid-sync.timer shelfid-sync.path shelfid-sync.service" in steps
    assert steps.index("shelfid-sync.service") < steps.index("sudo shelfid doctor --config /etc/shelfid/config.yaml")


def test_uninstall_keeps_data_unless_purged(installed_root, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(installed_root, root, symlinks=True)
    (root / "var" / "lib" / "shelfid").mkdir(parents=True)
    (root / "var" / "lib" / "shelfid" / "outbox.sqlite").write_text("unsent events")
    run = subprocess.run(["bash", str(REPO / "tools" / "uninstall.sh"), "--root", str(root)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert not (root / "opt" / "shelfid").exists() and not (root / "etc" / "systemd" / "system" / "shelfid-edge.service").exists()
    assert not os.path.lexists(root / "usr" / "local" / "bin" / "shelfid")
    assert (root / "var" / "lib" / "shelfid" / "outbox.sqlite").exists() and (root / "etc" / "shelfid" / "config.yaml").exists()
    run = subprocess.run(["bash", str(REPO / "tools" / "uninstall.sh"), "--root", str(root), "--purge"], capture_output=True, text=True)
    assert run.returncode == 0 and not (root / "var" / "lib" / "shelfid").exists() and not (root / "etc" / "shelfid").exists()
    assert "shelfid:" not in (root / "etc" / "passwd").read_text()

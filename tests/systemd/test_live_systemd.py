"""The units under a live systemd: tools/systemd_check.sh boots a Debian root in systemd-nspawn and checks READY,
the watchdog, Restart=, the sync timer and push trigger, the credentials and the hardening (about 1 min once its
root is cached; the first run builds the root and pip-installs, about 3 min)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import REPO

CANNOT_BOOT = 3  # the script's exit status when systemd-nspawn cannot boot the root on this machine

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mmdebstrap and systemd-nspawn --boot")


def test_the_units_pass_every_live_check_in_a_booted_container():
    if not shutil.which("systemd-nspawn") and not shutil.which("apt-get"):
        pytest.skip("no systemd-nspawn, and no apt-get to install it")
    check = subprocess.Popen(["bash", str(REPO / "tools" / "systemd_check.sh")], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = check.communicate(timeout=1500)
    except subprocess.TimeoutExpired:
        check.terminate()  # the script powers the container off on TERM
        out, _ = check.communicate(timeout=90)
        pytest.fail("tools/systemd_check.sh ran over 25 min:\n" + out[-4000:])
    if check.returncode == CANNOT_BOOT:
        pytest.skip("systemd-nspawn cannot boot a container here: " + out.strip().splitlines()[-1])
    assert check.returncode == 0 and "ALL PASS" in out, out[-6000:]
    assert "FAIL " not in out
    for behaviour in ("READY after warm-up", "sync timer", "credentials", "hardening", "push trigger", "Restart=on-failure",
                      "lost camera", "watchdog"):
        assert f"PASS  {behaviour}" in out, f"{behaviour} was not checked:\n{out[-4000:]}"

"""The power-cut filesystem (tools/powercut_fs.py) mounted for a test: FUSE needs /dev/fuse, fusermount3 and libfuse3."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tools.powercut_fs import PowercutMount

FUSE_MISSING = [what for what, ok in (("/dev/fuse", os.path.exists("/dev/fuse")), ("fusermount3", shutil.which("fusermount3")))
                if not ok]
needs_fuse = pytest.mark.skipif(bool(FUSE_MISSING), reason=f"no {', '.join(FUSE_MISSING)} here (`make system` installs fuse3)")


@pytest.fixture
def power(tmp_path) -> PowercutMount:
    """A mounted power-cut filesystem at tmp_path/mnt; `power.cut()` then `power.start()` is a power cut and a reboot."""
    mount = PowercutMount(tmp_path / "disk", tmp_path / "mnt").start()
    yield mount
    mount.unmount()


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""The power-cut filesystem on its own: what was fsynced survives a cut, nothing else does."""

from __future__ import annotations

import os

import pytest

from models.safe_write import write_bytes_atomic
from tests.power.conftest import fsync, needs_fuse

pytestmark = needs_fuse


def test_fsynced_bytes_survive_a_cut_and_unsynced_bytes_do_not(power):
    mnt = power.mountpoint
    (mnt / "kept").write_bytes(b"durable")
    fsync(mnt / "kept")
    fsync(mnt)
    with open(mnt / "kept", "ab") as f:
        f.write(b" and a tail never synced")
    (mnt / "never-synced").write_bytes(b"volatile")
    power.cut()
    power.start()
    assert (mnt / "kept").read_bytes() == b"durable"
    assert not (mnt / "never-synced").exists()


def test_a_name_is_durable_only_once_its_folder_is_fsynced(power):
    mnt = power.mountpoint
    for name in ("old", "gone"):
        (mnt / name).write_bytes(name.encode())
        fsync(mnt / name)
    fsync(mnt)
    (mnt / "new").write_bytes(b"new")
    fsync(mnt / "new")  # the bytes, not the name
    os.replace(mnt / "old", mnt / "renamed")
    os.unlink(mnt / "gone")
    power.cut()
    power.start()
    assert sorted(os.listdir(mnt)) == ["gone", "old"]  # the create, the rename and the unlink are undone
    os.replace(mnt / "old", mnt / "renamed")
    fsync(mnt)
    power.cut()
    power.start()
    assert sorted(os.listdir(mnt)) == ["gone", "renamed"] and (mnt / "renamed").read_bytes() == b"old"


def test_a_folder_made_in_a_parent_never_fsynced_is_lost_with_its_files(power):
    mnt = power.mountpoint
    (mnt / "a" / "b").mkdir(parents=True)
    (mnt / "a" / "b" / "f").write_bytes(b"x")
    for path in (mnt / "a" / "b" / "f", mnt / "a" / "b", mnt / "a"):  # everything but the root
        fsync(path)
    power.cut()
    power.start()
    assert not (mnt / "a").exists()


def test_a_name_fsynced_before_its_bytes_comes_back_empty(power):
    mnt = power.mountpoint
    (mnt / "f").write_bytes(b"never fsynced")
    fsync(mnt)
    power.cut()
    power.start()
    assert (mnt / "f").read_bytes() == b""


@pytest.mark.parametrize("seed", range(6))
def test_a_torn_cut_lands_whole_sectors_of_the_unsynced_writes_only(tmp_path, seed):
    from tools.powercut_fs import PowercutMount

    power = PowercutMount(tmp_path / "disk", tmp_path / "mnt", seed=seed).start()
    mnt = power.mountpoint
    try:
        (mnt / "f").write_bytes(b"o" * 8192)
        fsync(mnt / "f")
        fsync(mnt)
        with open(mnt / "f", "r+b") as f:
            f.write(b"n" * 8192)
        power.cut(tear=True)
        power.start()
        data = (mnt / "f").read_bytes()
        assert len(data) == 8192
        assert all(data[i:i + 512] in (b"o" * 512, b"n" * 512) for i in range(0, 8192, 512))
        new = data.count(b"n") // 512
        assert data == b"n" * new * 512 + b"o" * (8192 - new * 512)  # a prefix of the write landed
    finally:
        power.unmount()


def test_safe_write_keeps_the_old_or_the_new_content_through_a_cut(power):
    target = power.mountpoint / "state.json"
    write_bytes_atomic(target, b"v1")
    write_bytes_atomic(target, b"v2")
    power.cut()
    power.start()
    assert target.read_bytes() == b"v2"
    assert os.listdir(power.mountpoint) == ["state.json"]

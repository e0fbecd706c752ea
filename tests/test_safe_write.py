"""models.safe_write: whole content or the old one, no temp file after a failure, data then folder fsynced."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from models.safe_write import fsync_tree, replacing, write_bytes_atomic, write_json_atomic, write_text_atomic


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def synced(monkeypatch) -> list[str]:
    """What was fsynced and renamed, in order: `fsync <path>` and `replace <src> <dst>`."""
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(f"fsync {os.readlink(f'/proc/self/fd/{fd}')}")
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append(f"replace {src} {dst}")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def test_new_content_replaces_the_old_whole_and_leaves_only_the_target(tmp_path):
    target = tmp_path / "status.json"
    target.write_text("old and longer than the new content")
    write_json_atomic(target, {"version": 2})
    assert json.loads(target.read_text()) == {"version": 2}
    write_text_atomic(tmp_path / "a.csv", "é\n")
    write_bytes_atomic(tmp_path / "b.bin", b"\0\1")
    assert (tmp_path / "a.csv").read_bytes() == "é\n".encode() and (tmp_path / "b.bin").read_bytes() == b"\0\1"
    assert names(tmp_path) == ["a.csv", "b.bin", "status.json"]
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o644  # readable by the other service users, not private as mkstemp makes it


def test_the_file_is_fsynced_before_the_rename_and_the_folder_after_it(tmp_path, synced):
    target = tmp_path / "m.onnx"
    write_bytes_atomic(target, b"model")
    [tmp] = [e.split()[1] for e in synced if e.startswith("replace")]
    assert Path(tmp).parent == tmp_path and Path(tmp).name.startswith(".m.") and tmp.endswith(".onnx")  # hidden, same suffix
    assert synced == [f"fsync {tmp}", f"replace {tmp} {target}", f"fsync {tmp_path}"]


def test_a_serialiser_that_raises_midway_leaves_the_old_content_and_no_temp_file(tmp_path):
    target = tmp_path / "embeddings.npy"
    np.save(target, np.zeros(3))
    with pytest.raises(RuntimeError, match="midway"), replacing(target) as tmp:
        tmp.write_bytes(b"half an array")
        raise RuntimeError("serialiser failed midway")
    assert np.load(target).tolist() == [0, 0, 0] and names(tmp_path) == ["embeddings.npy"]


def test_an_unserialisable_value_writes_nothing(tmp_path):
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "status.json", {"when": object()})
    assert names(tmp_path) == []


def test_a_full_disk_at_fsync_removes_the_temp_file_and_raises(tmp_path, monkeypatch):
    target = tmp_path / "products.csv"
    target.write_text("old")

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError) as failed:
        write_text_atomic(target, "new")
    assert failed.value.errno == errno.ENOSPC
    assert target.read_text() == "old" and names(tmp_path) == ["products.csv"]


def test_a_folder_that_cannot_take_a_file_raises_and_leaves_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_bytes_atomic(tmp_path / "missing" / "x.bin", b"x")  # no folder is created for the caller
    assert names(tmp_path) == []


def test_fsync_tree_syncs_every_file_and_folder_deepest_first_and_the_top_last(tmp_path, synced):
    (tmp_path / "thumbnails").mkdir()
    (tmp_path / "thumbnails" / "p1.jpg").write_bytes(b"jpeg")
    (tmp_path / "catalog.json").write_text("{}")
    fsync_tree(tmp_path)
    assert sorted(synced[:-1]) == sorted(f"fsync {p}" for p in (tmp_path / "thumbnails" / "p1.jpg", tmp_path / "thumbnails",
                                                                   tmp_path / "catalog.json"))
    assert synced.index(f"fsync {tmp_path / 'thumbnails' / 'p1.jpg'}") < synced.index(f"fsync {tmp_path / 'thumbnails'}")
    assert synced[-1] == f"fsync {tmp_path}"

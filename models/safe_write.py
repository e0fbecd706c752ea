"""Writes that survive a power cut: temp file beside the target → fsync → `os.replace` → fsync of the folder.

A reader (or a reboot) sees the old content or the new, never half of either: the data is on disk before the
rename makes it visible, and the rename is on disk once the folder holding it is fsynced. A write that fails
(a full disk, a serialiser that raises) removes its temp file, so nothing holds on to space, and re-raises;
the target keeps its old content.

It lives in models/ because that is the lowest layer: models/ imports nothing of ours, and edge/ and
sync_agent/ may import models/, so this one copy serves the exported models, the catalog folders, the sync
agent's status and the server's work area and bundle tree alike.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FILE_MODE = 0o644  # mkstemp makes files private; models, catalogs and bundles are read by other service users


@contextmanager
def replacing(path: Path | str, mode: int = FILE_MODE) -> Iterator[Path]:
    """A temp path beside `path`, for writers that want a file name (torch.onnx.export, onnx.save, np.save).

    On a clean exit the file written there is fsynced and renamed over `path`, then the folder is fsynced;
    on an exception it is removed. The temp name keeps the target's suffix (some writers choose their format
    by it) and starts with a dot (folder listings, like the bundle storage's, skip it).
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        fsync_file(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_bytes_atomic(path: Path | str, data: bytes, mode: int = FILE_MODE) -> None:
    with replacing(path, mode) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_text_atomic(path: Path | str, text: str, encoding: str = "utf-8", mode: int = FILE_MODE) -> None:
    write_bytes_atomic(path, text.encode(encoding), mode)


def write_json_atomic(path: Path | str, obj: object, indent: int | None = 1, mode: int = FILE_MODE) -> None:
    """`obj` as JSON; serialised before the temp file exists, so an unserialisable value leaves nothing behind."""
    write_text_atomic(path, json.dumps(obj, indent=indent), mode=mode)


def fsync_file(path: Path | str) -> None:
    """Flush a file written (and closed) by someone else; Linux fsyncs through a read-only descriptor too."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path | str) -> None:
    """Make the names in `folder` durable: a rename or a new file in it is only on disk once the folder is."""
    fsync_file(folder)  # the same call: open read-only, fsync, close


def make_dirs(folder: Path | str) -> Path:
    """`folder` and its missing parents, each new one durable: its name is on disk once its parent is fsynced, and
    a file fsynced inside a folder whose own name never was is lost with it at a power cut."""
    folder = Path(folder)
    missing, level = [], folder
    while not level.is_dir() and level.parent != level:
        missing.append(level)
        level = level.parent
    for new in reversed(missing):  # outermost first: each one's parent exists, and is fsynced once it holds the name
        try:
            new.mkdir()
        except FileExistsError:  # made meanwhile by another process or thread
            pass
        fsync_dir(new.parent)
    return folder


def fsync_tree(folder: Path | str) -> None:
    """Every file and folder under `folder`, and `folder` itself: a folder written in place before it is renamed
    into place (a catalog, a product's images), so the rename never publishes names without their data."""
    folder = Path(folder)
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):  # deepest first: contents before names
        if path.is_file() or path.is_dir():
            fsync_file(path)
    fsync_dir(folder)

#!/usr/bin/env python3
"""A filesystem that forgets, at a power cut, everything not made durable by fsync: the tests' and
tools/fault_power.py's power-cut harness.

    python -m tools.powercut_fs BACKING MOUNTPOINT [--seed N]     (serves until `cut`/`tear` on stdin, or SIGKILL)

The model is what POSIX promises and no more, as in SQLite's crash tests, the ALICE study (OSDI '14) and Jepsen's
LazyFS:
- a file's bytes reach the disk when that file is fsynced (fsync or fdatasync), not before;
- a name (create, mkdir, rename, unlink, link, symlink) reaches the disk when the folder holding it is fsynced:
  a new file whose folder was never fsynced is gone after a cut, however often the file itself was; a folder made
  and fsynced whose parent was not is gone with everything in it; a rename not fsynced is undone;
- a cut loses all the rest. A `tear` cut first lets part of each file's unsynced writes land (any subset, in order,
  the last one kept torn at a 512-byte sector boundary), as a disk that wrote some sectors before losing power.

Everything durable lives in BACKING, written at fsync time only, each step atomic (temp file + rename), so the
serving process can be SIGKILLed at any instant:
    BACKING/names.json    every durable folder's entries, symlinks' targets, modes
    BACKING/data/<ino>    a durable file's bytes
Everything else is this process's memory. A cut is this process's end; a new mount of BACKING is the machine after
the power comes back (the volatile layer is gone, unreachable data is collected). Locks (fcntl, flock) are the
kernel's own (no lock operation is served), times are not kept across a cut, owners are not kept at all.

`PowercutMount` runs one as a child process for the tests and tools: start(), cut(tear=…), unmount().
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import random
import select
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SECTOR = 512
ROOT = 1


@dataclass
class Node:
    kind: str  # "file" | "dir" | "link"
    mode: int
    data: bytearray = field(default_factory=bytearray)  # a file's bytes, as the processes see them
    entries: dict[str, int] = field(default_factory=dict)  # a folder's names
    target: str = ""  # a symlink's
    mtime_ns: int = field(default_factory=time.time_ns)
    links: int = 0  # names that reach it
    opened: int = 0  # handles that reach it (an unlinked file lives on while one is open)
    unsynced: list[tuple[int, bytes | None]] = field(default_factory=list)  # since the last fsync: (offset, bytes) or (size, None)


def fuse_error(code: int) -> OSError:
    from mfusepy import FuseOSError

    return FuseOSError(code)


class Durable:
    """BACKING: the names and bytes that survive a cut."""

    def __init__(self, backing: Path):
        self.backing, self.data = backing, backing / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        names = backing / "names.json"
        self.records: dict[int, dict] = {int(k): v for k, v in json.loads(names.read_text()).items()} if names.exists() else {
            ROOT: {"kind": "dir", "mode": stat.S_IFDIR | 0o755, "entries": {}}}

    def load(self) -> dict[int, Node]:
        """What the machine finds at boot: the nodes reachable from the root; the rest of BACKING is collected."""
        nodes: dict[int, Node] = {}
        todo = [ROOT]
        while todo:
            ino = todo.pop()
            if ino in nodes or ino not in self.records:
                continue
            r = self.records[ino]
            path = self.data / str(ino)
            nodes[ino] = Node(r["kind"], r["mode"], bytearray(path.read_bytes()) if r["kind"] == "file" and path.exists() else bytearray(),
                              {n: int(i) for n, i in r.get("entries", {}).items()}, r.get("target", ""))
            todo += nodes[ino].entries.values()
        for ino in set(self.records) - set(nodes):
            del self.records[ino]
        for path in self.data.iterdir():
            if not path.name.isdigit() or int(path.name) not in nodes:
                path.unlink()
        for node in nodes.values():  # a name whose node was lost with it (never happens from save(); kept for safety)
            node.entries = {n: i for n, i in node.entries.items() if i in nodes}
        self.save()
        return nodes

    def save(self) -> None:
        tmp = self.backing / "names.json.tmp"
        tmp.write_text(json.dumps({str(k): v for k, v in self.records.items()}))
        os.replace(tmp, self.backing / "names.json")

    def write_data(self, ino: int, data: bytes) -> None:
        tmp = self.data / f"{ino}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.data / str(ino))

    def read_data(self, ino: int) -> bytes:
        path = self.data / str(ino)
        return path.read_bytes() if path.exists() else b""


class PowercutFS:
    """The mfusepy operations: paths resolved in memory; fsync and fsyncdir write BACKING."""

    use_ns = True

    def __init__(self, backing: Path, seed: int = 0):
        self.durable = Durable(backing)
        self.nodes = self.durable.load()
        self.next_ino = max(self.nodes) + 1
        self.handles: dict[int, int] = {}  # fh -> ino (an unlinked file stays readable through its handle)
        self.nodes[ROOT].links = 1  # the mount holds it
        for node in self.nodes.values():
            for child in node.entries.values():
                self.nodes[child].links += 1
        self.next_fh = 1
        self.mutex = threading.Lock()  # one operation at a time, and a cut never in the middle of one
        self.rng = random.Random(seed)

    # --- helpers -----------------------------------------------------------------------------
    def resolve(self, path: str) -> int:
        ino = ROOT
        for part in path.strip("/").split("/") if path.strip("/") else []:
            node = self.nodes[ino]
            if node.kind != "dir":
                raise fuse_error(errno.ENOTDIR)
            if part not in node.entries:
                raise fuse_error(errno.ENOENT)
            ino = node.entries[part]
        return ino

    def parent(self, path: str) -> tuple[Node, str]:
        head, _, name = path.rstrip("/").rpartition("/")
        node = self.nodes[self.resolve(head or "/")]
        if node.kind != "dir":
            raise fuse_error(errno.ENOTDIR)
        return node, name

    def target(self, path: str | None, fh: int | None) -> int:
        return self.handles[fh] if fh is not None and fh in self.handles else self.resolve(path)

    def add(self, path: str, node: Node) -> int:
        folder, name = self.parent(path)
        if name in folder.entries:
            raise fuse_error(errno.EEXIST)
        ino, self.next_ino = self.next_ino, self.next_ino + 1
        self.nodes[ino] = node
        folder.entries[name] = ino
        node.links += 1
        folder.mtime_ns = time.time_ns()
        return ino

    def handle(self, ino: int) -> int:
        fh, self.next_fh = self.next_fh, self.next_fh + 1
        self.handles[fh] = ino
        self.nodes[ino].opened += 1
        return fh

    def unlinked(self, ino: int) -> None:
        """One name fewer; a node no name and no handle reaches is forgotten (its durable copy stays until a fsync
        of its folder or the next boot says otherwise)."""
        node = self.nodes[ino]
        node.links -= 1
        if node.links <= 0 and node.opened <= 0:
            del self.nodes[ino]

    def init(self, path):
        print("mounted", flush=True)  # the kernel talks to us: PowercutMount.start() waits for this line

    # --- metadata ----------------------------------------------------------------------------
    def getattr(self, path, fh=None):
        with self.mutex:
            ino = self.target(path, fh)
            node = self.nodes[ino]
            size = len(node.data) if node.kind == "file" else len(node.target) if node.kind == "link" else 4096
            links = 2 + sum(self.nodes[i].kind == "dir" for i in node.entries.values()) if node.kind == "dir" else 1
            return {"st_mode": node.mode, "st_ino": ino, "st_nlink": links, "st_size": size, "st_uid": os.getuid(),
                    "st_gid": os.getgid(), "st_mtime": node.mtime_ns, "st_ctime": node.mtime_ns, "st_atime": node.mtime_ns,
                    "st_blocks": (size + 511) // 512, "st_blksize": 4096}

    def readdir(self, path, fh):
        """Names with their inode numbers: with use_ino, a name without one (0) is skipped by readers."""
        with self.mutex:
            ino = self.target(path, fh)
            entries = self.nodes[ino].entries
            return [(".", {"st_ino": ino, "st_mode": stat.S_IFDIR}, 0), ("..", {"st_ino": ROOT, "st_mode": stat.S_IFDIR}, 0),
                    *((name, {"st_ino": i, "st_mode": self.nodes[i].mode}, 0) for name, i in entries.items())]

    def readlink(self, path):
        with self.mutex:
            return self.nodes[self.resolve(path)].target

    def chmod(self, path, mode):
        with self.mutex:
            node = self.nodes[self.resolve(path)]
            node.mode = stat.S_IFMT(node.mode) | stat.S_IMODE(mode)
            return 0

    def chown(self, path, uid, gid):
        return 0

    def utimens(self, path, times=None):
        with self.mutex:
            self.nodes[self.resolve(path)].mtime_ns = times[1] if times else time.time_ns()
            return 0

    def statfs(self, path):
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": 1 << 24, "f_bfree": 1 << 23, "f_bavail": 1 << 23,
                "f_files": 1 << 20, "f_ffree": 1 << 19, "f_namemax": 255}

    # --- names -------------------------------------------------------------------------------
    def mkdir(self, path, mode):
        with self.mutex:
            self.add(path, Node("dir", stat.S_IFDIR | stat.S_IMODE(mode)))
            return 0

    def symlink(self, target, source):  # mfusepy: `target` is the new link's path, `source` what it points to
        with self.mutex:
            self.add(target, Node("link", stat.S_IFLNK | 0o777, target=source))
            return 0

    def link(self, target, source):  # a hard link at `target` to the file at `source`
        with self.mutex:
            ino = self.resolve(source)
            folder, name = self.parent(target)
            if name in folder.entries:
                raise fuse_error(errno.EEXIST)
            folder.entries[name] = ino
            self.nodes[ino].links += 1
            return 0

    def unlink(self, path):
        with self.mutex:
            folder, name = self.parent(path)
            if name not in folder.entries:
                raise fuse_error(errno.ENOENT)
            if self.nodes[folder.entries[name]].kind == "dir":
                raise fuse_error(errno.EISDIR)
            self.unlinked(folder.entries.pop(name))
            return 0

    def rmdir(self, path):
        with self.mutex:
            folder, name = self.parent(path)
            ino = folder.entries.get(name)
            if ino is None:
                raise fuse_error(errno.ENOENT)
            if self.nodes[ino].kind != "dir":
                raise fuse_error(errno.ENOTDIR)
            if self.nodes[ino].entries:
                raise fuse_error(errno.ENOTEMPTY)
            del folder.entries[name]
            self.unlinked(ino)
            return 0

    def rename(self, old, new):
        with self.mutex:
            src, src_name = self.parent(old)
            dst, dst_name = self.parent(new)
            if src_name not in src.entries:
                raise fuse_error(errno.ENOENT)
            ino = src.entries[src_name]
            replaced = dst.entries.get(dst_name)
            if replaced == ino:
                return 0
            if replaced is not None:
                if self.nodes[replaced].kind == "dir" and self.nodes[replaced].entries:
                    raise fuse_error(errno.ENOTEMPTY)
                if (self.nodes[replaced].kind == "dir") != (self.nodes[ino].kind == "dir"):
                    raise fuse_error(errno.EISDIR if self.nodes[replaced].kind == "dir" else errno.ENOTDIR)
            del src.entries[src_name]
            dst.entries[dst_name] = ino
            src.mtime_ns = dst.mtime_ns = time.time_ns()
            if replaced is not None:
                self.unlinked(replaced)
            return 0

    # --- files -------------------------------------------------------------------------------
    def create(self, path, mode, fi=None):
        with self.mutex:
            return self.handle(self.add(path, Node("file", stat.S_IFREG | stat.S_IMODE(mode))))

    def open(self, path, flags):
        with self.mutex:
            ino = self.resolve(path)
            if flags & os.O_TRUNC:
                self._truncate(self.nodes[ino], 0)
            return self.handle(ino)

    def opendir(self, path):
        with self.mutex:
            return self.handle(self.resolve(path))

    def release(self, path, fh):
        with self.mutex:
            ino = self.handles.pop(fh, None)
            if ino is not None:
                node = self.nodes[ino]
                node.opened -= 1
                if node.links <= 0 and node.opened <= 0:
                    del self.nodes[ino]
            return 0

    releasedir = release

    def flush(self, path, fh):
        return 0

    def read(self, path, size, offset, fh):
        with self.mutex:
            return bytes(self.nodes[self.target(path, fh)].data[offset:offset + size])

    def write(self, path, data, offset, fh):
        with self.mutex:
            node = self.nodes[self.target(path, fh)]
            data = bytes(data)
            if offset > len(node.data):
                node.data.extend(bytes(offset - len(node.data)))
            node.data[offset:offset + len(data)] = data
            node.unsynced.append((offset, data))
            node.mtime_ns = time.time_ns()
            return len(data)

    def truncate(self, path, length, fh=None):
        with self.mutex:
            self._truncate(self.nodes[self.target(path, fh)], length)
            return 0

    def _truncate(self, node: Node, length: int) -> None:
        if length < len(node.data):
            del node.data[length:]
        else:
            node.data.extend(bytes(length - len(node.data)))
        node.unsynced.append((length, None))
        node.mtime_ns = time.time_ns()

    # --- durability --------------------------------------------------------------------------
    def fsync(self, path, datasync, fh):
        with self.mutex:
            ino = self.target(path, fh)
            node = self.nodes[ino]
            if node.kind == "file":
                self.durable.write_data(ino, bytes(node.data))
                node.unsynced.clear()
            if ino in self.durable.records and self.durable.records[ino]["mode"] != node.mode:
                self.durable.records[ino]["mode"] = node.mode
                self.durable.save()
            return 0

    def fsyncdir(self, path, datasync, fh):
        """The folder's names become durable; a child new to the disk arrives as it is there: a folder empty, a file
        with the bytes its last fsync wrote (none: empty), a symlink whole."""
        with self.mutex:
            ino = self.target(path, fh)
            node, records = self.nodes[ino], self.durable.records
            records.setdefault(ino, {"kind": "dir", "mode": node.mode})["entries"] = dict(node.entries)
            for child in node.entries.values():
                if child not in records:
                    c = self.nodes[child]
                    records[child] = {"kind": c.kind, "mode": c.mode} | (
                        {"entries": {}} if c.kind == "dir" else {"target": c.target} if c.kind == "link" else {})
            self.durable.save()
            return 0

    def cut(self, tear: bool) -> None:
        """The power goes: with `tear`, each durable file's unsynced writes land in part first. Never returns."""
        self.mutex.acquire()  # held to the end: no operation runs after this point
        if tear:
            for ino, node in self.nodes.items():
                if node.kind == "file" and node.unsynced and ino in self.durable.records:
                    self.durable.write_data(ino, self.torn(self.durable.read_data(ino), node.unsynced))
        os._exit(0)

    def torn(self, data: bytes, writes: list[tuple[int, bytes | None]]) -> bytes:
        """`data` with a random subset of `writes` applied in order, the last one applied cut at a sector boundary."""
        chosen = [w for w in writes if self.rng.random() < 0.5]
        out = bytearray(data)
        for i, (offset, payload) in enumerate(chosen):
            if payload is None:
                del out[offset:]
                out.extend(bytes(max(0, offset - len(out))))
                continue
            if i == len(chosen) - 1:
                payload = payload[:self.rng.randrange(0, len(payload) // SECTOR + 1) * SECTOR]
            if offset > len(out):
                out.extend(bytes(offset - len(out)))
            out[offset:offset + len(payload)] = payload
        return bytes(out)


def serve(backing: Path, mountpoint: Path, seed: int) -> None:
    """Mount and serve (single-threaded); `cut` or `tear` on stdin ends the process at once, as a power cut."""
    from mfusepy import FUSE

    fs = PowercutFS(backing, seed)

    def control() -> None:
        for line in sys.stdin:
            if line.strip() in ("cut", "tear"):
                fs.cut(tear=line.strip() == "tear")
        fs.cut(tear=False)  # the control pipe closed: whoever ran us is gone

    threading.Thread(target=control, daemon=True).start()
    FUSE(fs, str(mountpoint), foreground=True, nothreads=True, use_ino=True, hard_remove=True, attr_timeout=0,
         entry_timeout=0, negative_timeout=0)


def die_with_parent() -> None:
    """This (forked) process gets SIGKILL when its parent ends (Linux prctl PR_SET_PDEATHSIG)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


class PowercutMount:
    """The filesystem as a child process: mounted at `mountpoint`, durable state in `backing`."""

    def __init__(self, backing: Path, mountpoint: Path, seed: int = 0, fork: bool = False):
        """`fork`: serve from a fork of this process (a mount in a few ms, no interpreter to start): only from a
        process without threads, as tools/fault_power.py is; else a fresh interpreter runs this file."""
        self.backing, self.mountpoint, self.seed, self.fork = Path(backing), Path(mountpoint), seed, fork
        self.pid, self.control, self.process, self.cuts = 0, None, None, 0
        self.log = self.backing.parent / f"{self.backing.name}.log"

    def start(self, timeout: float = 20.0) -> PowercutMount:
        """Mount (again): the machine after the power came back."""
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        seed = self.seed + self.cuts
        if self.fork:
            import mfusepy  # noqa: F401  (loaded once, here, rather than in every child)

            control, to_child = os.pipe()
            ready, from_child = os.pipe()
            self.pid = os.fork()
            if self.pid == 0:  # the filesystem: never returns
                try:
                    die_with_parent()
                    os.dup2(control, 0)
                    os.dup2(from_child, 1)
                    os.dup2(os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644), 2)
                    os.closerange(3, 65536)  # no other pipe of the parent's stays open here (their ends would never see EOF)
                    serve(self.backing, self.mountpoint, seed)
                finally:
                    os._exit(1)
            os.close(control)
            os.close(from_child)
            self.control, reader = os.fdopen(to_child, "w"), os.fdopen(ready)
        else:
            process = subprocess.Popen([sys.executable, __file__, str(self.backing), str(self.mountpoint), "--seed", str(seed)],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(self.log, "ab"), text=True)
            self.process, self.pid, self.control, reader = process, process.pid, process.stdin, process.stdout
        # no thread for the wait: tools/fault_power.py forks its workloads from this process
        line = reader.readline() if select.select([reader], [], [], timeout)[0] else ""
        reader.close()
        if line.strip() != "mounted":
            self.cut()
            raise RuntimeError(f"the power-cut filesystem did not mount at {self.mountpoint} within {timeout:.0f} s: "
                               f"{self.log.read_text(errors='replace')[-800:]}")
        return self

    def cut(self, tear: bool = False) -> None:
        """The power goes: unsynced data is lost (with `tear`, partly written first); the mount is detached."""
        if self.pid:
            try:
                self.control.write("tear\n" if tear else "cut\n")
                self.control.flush()
            except BrokenPipeError:
                pass
            self.process.wait() if self.process else os.waitpid(self.pid, 0)
            self.control.close()
        self.pid, self.control, self.process = 0, None, None
        self.cuts += 1
        self.detach()

    def detach(self) -> None:
        """Lazy unmount: processes still inside get ENOTCONN; the mount point is free at once."""
        subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], capture_output=True)

    unmount = cut  # at the end of a test the power just goes too: what was durable is what the next mount sees


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backing", type=Path, help="folder holding the durable state")
    parser.add_argument("mountpoint", type=Path)
    parser.add_argument("--seed", type=int, default=0, help="what a `tear` cut lets land")
    args = parser.parse_args()
    serve(args.backing, args.mountpoint, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

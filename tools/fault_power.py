#!/usr/bin/env python3
"""Power cuts, not kills: the daemon's outbox, the sync agent and the catalog server's store on a filesystem that
forgets everything not fsynced (tools/powercut_fs.py), cut at random moments (seeded).

    python -m tools.fault_power --cuts 1000

Three workloads, each a process forked from this one (a restart costs no imports), each on a power-cut mount of
its own (three machines: the device's reporting side, the device's sync agent, the catalog server), cut in turn
while the other two run on:
- the daemon's reporting side: events committed to the outbox (`<mnt>/device/outbox/events.sqlite`, under load) and
  sent by the MQTTReporter to a real mosquitto (on the real disk); an event counts as acknowledged to the camera loop
  once Outbox.add() returned its seq;
- the device's sync agent (`<mnt>/device/catalogs`, blobs, status), following a bundle tree on the real disk where
  this process publishes a new version (other products, so shards change) as each of its rounds starts: cut mid-download,
  mid-assembly, mid-switch;
- the catalog server (`<mnt>/server`: SQLite records, work area, published tree) behind its HTTP API on loopback: a
  product uploaded, the catalog published, again and again; a publish counts once it was answered 201.

Each round: wait a random moment (0 to --window s; the server: 0 to --server-window s after its restart), SIGKILL
one workload and cut its power (every other cut tears unsynced writes at sector boundaries), mount again, check,
restart it. The checks: the outbox opens and passes
`PRAGMA integrity_check`; the catalog folder `current` names loads as the daemon loads it (its search index too) and
is, file for file, what its signed manifest assembles to; the server's SQLite passes `PRAGMA integrity_check`, the
store opens, every image it records is in its work area with those bytes, and every publish answered 201 is served
(its version recorded, the published manifest at or above it and signed, every blob there with its hash). At the
end the outbox drains with the power on, and every acknowledged event must have reached a subscriber
(mosquitto_sub, persistent session), and every copy after an event's first must say `replayed: true` (at-least-once
delivery: consumers dedup on event_id). One summary line; exit 0 only when nothing acknowledged was lost, nothing was
corrupt and every duplicate was marked.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import json
import os
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from edge.core.catalog import Product, load_catalog
from edge.core.config import Config, MQTTConfig
from edge.core.stored_index import load_index
from edge.reporting.events import encode, make_event
from edge.reporting.mqtt import MQTTReporter
from edge.reporting.outbox import Outbox
from sync_agent.agent import Agent
from sync_agent.bundle import assemble, blob_key, decode_signature, manifest_key
from sync_agent.errors import SyncError
from sync_agent.server.app import ServerSettings, create_app
from sync_agent.server.publisher import publish, resign_due
from sync_agent.server.storage import LocalStorage
from sync_agent.signing import generate_keypair, load_private_key, load_public_key, verify
from tools.mqtt_harness import Broker
from tools.powercut_fs import PowercutMount, die_with_parent

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "shelf-catalog"
TOKEN = "powercut-admin"
DEVICE = "powercut"


# --- the workloads (each runs in a forked child; `ack` is the write end of a pipe to this process) ----------------

def say(ack: int, line: str) -> None:
    os.write(ack, (line + "\n").encode())
    print(f"{time.time():.3f} {line}", file=sys.stderr, flush=True)  # the workload's log, with the time


def reporting(mnt: Path, port: int) -> tuple[Outbox, MQTTReporter]:
    """The daemon's reporting side on this mount: its outbox, and the reporter sending from it."""
    outbox = Outbox(mnt / "device" / "outbox" / "events.sqlite")
    reporter = MQTTReporter(MQTTConfig(host="127.0.0.1", port=port, client_id=f"shelfid-{DEVICE}"), DEVICE, outbox)
    reporter.start()
    return outbox, reporter


def report_events(ack: int, mnt: Path, port: int) -> None:
    """Events into the outbox as fast as the disk lets (a short pause between), sent as they come."""
    outbox, reporter = reporting(mnt, port)
    product = Product("cha-mate-limao", "7891234000011", "Chá Mate Limão")
    for track in range(10**9):
        now = time.time()
        event = make_event(kind="identified", seq=outbox.next_seq(), device=DEVICE, camera="cam0", ts=now, first_seen=now - 0.5,
                           track_id=track, product=product, guess=None, similarity=0.9, inliers=120, inlier_ratio=0.8,
                           confidence=0.99, bbox_norm=(0.1, 0.2, 0.3, 0.9), catalog_id="shelf", catalog_version=1)
        if outbox.add(event["event_id"], reporter.topics["events"], encode(event)) is not None:
            say(ack, f"stored {event['event_id']}")
        reporter.wake()
        time.sleep(0.002)


def drain_outbox(ack: int, mnt: Path, port: int) -> None:
    """The power on for good: what the outbox holds is sent, then the reporter stops."""
    outbox, reporter = reporting(mnt, port)
    deadline = time.monotonic() + 120
    while outbox.size and time.monotonic() < deadline:
        time.sleep(0.05)
    if outbox.size:
        raise RuntimeError(f"the outbox did not drain within 120 s: {outbox.size} events left")
    reporter.stop()
    say(ack, "drained")


def sync_catalogs(ack: int, config: Config, model_ids: tuple[str, str]) -> None:
    """The device's agent, syncing again and again (the tree gets a new version before every round)."""
    agent = Agent(config, model_ids=model_ids)
    while True:
        try:
            result = agent.sync_once()
            if result.outcome == "updated":
                say(ack, f"synced {result.version}")
        except SyncError as exc:
            say(ack, f"failed {' '.join(str(exc).split())}")
        time.sleep(0.05)


def serve_catalogs(ack: int, mnt: Path, private_key: Path, seed: int) -> None:
    """The catalog server on loopback, and a client uploading a product and publishing, again and again."""
    import requests

    from tools.http_harness import ServerThread

    server = ServerThread(create_app(ServerSettings(root=mnt / "server", signing_key=private_key, token=TOKEN))).start()
    api, rng = requests.Session(), random.Random(f"{seed}-{os.getpid()}")  # another run of uploads after each restart
    api.headers["Authorization"] = f"Bearer {TOKEN}"
    say(ack, f"created {api.post(f'{server.url}/api/v1/catalogs', json={'catalog_id': 'shelf', 'name': 'Shelf'}).status_code}")
    images = sorted(SAMPLE.glob("*/*.jpg"))
    while True:
        product = f"p{rng.randrange(3)}"  # a few small products: a publish builds one shard in about a second
        chosen = rng.sample(images, 1)
        files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in chosen]
        answer = api.put(f"{server.url}/api/v1/catalogs/shelf/products/{product}", files=files, data={"name": product})
        if answer.status_code in (200, 201):
            say(ack, f"product {product}")
        answer = api.post(f"{server.url}/api/v1/catalogs/shelf/publish")
        if answer.status_code == 201:
            say(ack, f"published {answer.json()['version']}")
        elif answer.status_code >= 500:
            say(ack, f"failed publish {answer.status_code} {answer.text[:200]}")


class Workload:
    """One workload as a child forked from this process (no imports to redo): its pid and the pipe of its lines."""

    def __init__(self, log: Path, target, *args):
        self.log, self.target, self.args = log, target, args
        self.pid, self.pipe, self.buffer, self.started = 0, -1, b"", 0.0

    def start(self) -> Workload:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 0
            try:
                die_with_parent()
                log = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                os.dup2(log, 1)
                os.dup2(log, 2)
                os.dup2(write, 3)
                os.closerange(4, 65536)  # the other workloads' pipes, the mounts' control pipes: not ours to hold open
                self.target(3, *self.args)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        os.close(write)
        self.pid, self.pipe, self.buffer, self.started = pid, read, b"", time.monotonic()
        return self

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)

    def reap(self, tally: Tally) -> None:
        """After its end: the lines still in the pipe (written before it died), then the pipe closed."""
        os.waitpid(self.pid, 0)
        while self.read(tally):
            pass
        os.close(self.pipe)

    def read(self, tally: Tally) -> bool:
        """One read of its pipe into `tally`; False at the end of the pipe."""
        chunk = os.read(self.pipe, 65536)
        *lines, self.buffer = (self.buffer + chunk).split(b"\n")
        for line in lines:
            record(line.decode(), tally)
        return bool(chunk)


def listen(workloads: list[Workload], tally: Tally, seconds: float, ready=None) -> None:
    """Record what the workloads say for `seconds` (or until `ready()` is true)."""
    until = time.monotonic() + seconds
    while (left := until - time.monotonic()) > 0 and not (ready and ready()):
        readable, _, _ = select.select([w.pipe for w in workloads], [], [], left)
        for workload in workloads:
            if workload.pipe in readable and not workload.read(tally):
                workloads = [w for w in workloads if w is not workload]  # ended (its log says why); restarted after the cut
                if not workloads:
                    return


# --- what this process keeps and checks -------------------------------------------------------------------------

@dataclass
class Tally:
    cuts: int = 0
    stored: list[str] = field(default_factory=list)  # event ids acknowledged to the camera loop, in order
    outboxes: int = 0
    catalogs: int = 0  # `current` opened (a cut before the first sync leaves none)
    stores: int = 0
    synced: int = 0  # the highest version a sync reported done
    syncs_undone: int = 0  # cuts after which `current` was older than a sync that had reported done
    published: int = 0  # the highest version answered 201
    publishes: int = 0
    products: int = 0
    corrupt: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # workload lines saying something failed (not a finding by itself)
    seconds: dict[str, float] = field(default_factory=dict)  # where the rounds' time went besides the waits

    def problem(self, text: str) -> None:
        self.corrupt.append(f"cut {self.cuts}: {text}")
        print(f"cut {self.cuts}: {text}", file=sys.stderr, flush=True)


def record(line: str, tally: Tally) -> None:
    word, _, rest = line.partition(" ")
    if word == "stored":
        tally.stored.append(rest)
    elif word == "synced":
        tally.synced = max(tally.synced, int(rest))
    elif word == "published":
        tally.published = max(tally.published, int(rest))
        tally.publishes += 1
    elif word == "product":
        tally.products += 1
    elif word == "failed":
        tally.failures.append(rest)


def integrity(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def check_outbox(mnt: Path, tally: Tally) -> None:
    path = mnt / "device" / "outbox" / "events.sqlite"
    if not path.exists():
        if tally.stored:
            tally.problem(f"{path} is gone after {len(tally.stored)} acknowledged events")
        return
    try:
        Outbox(path).close()
        result = integrity(path)
    except sqlite3.Error as exc:
        result = f"{type(exc).__name__}: {exc}"
    if result != "ok":
        tally.problem(f"outbox does not open cleanly: {result}")
    tally.outboxes += 1


class Catalogs:
    """The versions this process published to the device's tree: manifest bytes, and the folder each assembles to."""

    def __init__(self, work: Path, storage: LocalStorage, public_key: Path, sources: list, model_ids: tuple[str, str]):
        self.work, self.storage, self.sources, self.model_ids = work, storage, sources, model_ids
        self.public_key = load_public_key(public_key)
        self.manifests: dict[int, bytes] = {}  # version -> the signed manifest's bytes (verified once published)

    def publish(self, version: int, key) -> None:
        publish(self.storage, self.sources[version % len(self.sources)], "shelf", key, version)
        signed = self.storage.get(manifest_key("shelf"))
        verify(self.public_key, signed, decode_signature(self.storage.get(manifest_key("shelf") + ".sig")))
        self.manifests[version] = signed

    def reference(self, version: int) -> Path:
        folder = self.work / "reference" / f"v{version}"
        if not folder.exists():
            manifest = json.loads(self.manifests[version])
            staging = folder.with_name(f".v{version}")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            (staging / "manifest.json").write_bytes(self.manifests[version])
            assemble(manifest, lambda sha: self.storage.get(blob_key(sha)), staging)
            staging.rename(folder)
        return folder

    def check(self, mnt: Path, tally: Tally) -> None:
        current = mnt / "device" / "catalogs" / "current"
        if not current.exists():
            if current.is_symlink():
                tally.problem(f"`current` names {os.readlink(current)}, which is not there")
            elif tally.synced:
                tally.syncs_undone += 1
            return
        try:
            catalog = load_catalog(current, *self.model_ids)
            if catalog.stored_index is not None:
                load_index(*catalog.stored_index, nprobe=1)
        except Exception as exc:  # whatever the loader says: a `current` that does not load
            tally.problem(f"`current` ({os.readlink(current)}) does not load: {type(exc).__name__}: {exc}")
            return
        version = catalog.version
        signed = self.manifests.get(version)
        if signed is None or (current / "manifest.json").read_bytes() != signed:
            tally.problem(f"`current` v{version}: its manifest.json is not the signed manifest of v{version}")
            return
        different = folder_differences(current, self.reference(version))
        if different:
            tally.problem(f"`current` v{version} differs from what its signed manifest assembles to: {different[:3]}")
            return
        tally.catalogs += 1
        if version < tally.synced:
            tally.syncs_undone += 1


def folder_differences(folder: Path, reference: Path) -> list[str]:
    """Files missing, extra or different between two catalog folders."""
    mine = {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()}
    theirs = {p.relative_to(reference) for p in reference.rglob("*") if p.is_file()}
    out = [f"missing {p}" for p in sorted(theirs - mine)] + [f"extra {p}" for p in sorted(mine - theirs)]
    return out + [f"differs {p}" for p in sorted(mine & theirs) if not filecmp.cmp(folder / p, reference / p, shallow=False)]


def check_store(mnt: Path, private_key: Path, public_key: Path, tally: Tally) -> None:
    from sync_agent.server.store import CatalogStore

    root = mnt / "server"
    database = root / "catalog.db"
    if not database.exists():
        if tally.published:
            tally.problem(f"{database} is gone after {tally.publishes} publishes answered 201")
        return
    try:
        result = integrity(database)
        CatalogStore(root / "work", database)  # what the server does at start: migrations, the work area's import
    except Exception as exc:
        result = f"{type(exc).__name__}: {exc}"
    if result != "ok":
        tally.problem(f"the server's store does not open cleanly: {result}")
        return
    tally.stores += 1
    db = sqlite3.connect(database)
    try:
        recorded = db.execute("SELECT max(version) FROM versions WHERE catalog_id = 'shelf'").fetchone()[0] or 0
        images = db.execute("SELECT catalog_id, product_id, file, sha256 FROM images").fetchall()
    finally:
        db.close()
    for catalog_id, product_id, file, sha in images:  # the records and the work area agree: the next publish can build
        path = root / "work" / catalog_id / product_id / file
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            tally.problem(f"the store records {catalog_id}/{product_id}/{file}, the work area has "
                          f"{'no such file' if not path.is_file() else 'other bytes'} there")
            break
    if not tally.published:
        return
    storage = LocalStorage(root / "public")
    resign_due(storage, load_private_key(private_key))  # what the server's start does first (its re-sign pass)
    manifest_bytes, signature = storage.get(manifest_key("shelf")), storage.get(manifest_key("shelf") + ".sig")
    if recorded < tally.published:
        tally.problem(f"publish v{tally.published} was answered 201, the store records v{recorded}")
    if manifest_bytes is None or signature is None:
        tally.problem(f"publish v{tally.published} was answered 201, no signed manifest is served")
        return
    try:
        verify(load_public_key(public_key), manifest_bytes, decode_signature(signature))
    except Exception as exc:
        tally.problem(f"the served manifest's signature does not verify: {exc}")
    manifest = json.loads(manifest_bytes)
    if manifest["version"] < tally.published:
        tally.problem(f"publish v{tally.published} was answered 201, the served manifest is v{manifest['version']}")
    for blob in manifest["blobs"]:
        data = storage.get(blob_key(blob["sha256"]))
        if data is None or hashlib.sha256(data).hexdigest() != blob["sha256"]:
            tally.problem(f"served manifest v{manifest['version']}: blob {blob['sha256'][:12]} is "
                          f"{'missing' if data is None else 'not what its name says'}")
            return


# --- the run ----------------------------------------------------------------------------------------------------

def build_sources(work: Path) -> list:
    """Catalogs of different product subsets for the device's tree, computed once with the device's models."""
    from tools.fault_sync import build_subsets

    return build_subsets(work)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuts", type=int, default=1000, help="power cuts, taken in turn by the three workloads")
    parser.add_argument("--seed", type=int, default=0, help="the cut moments and what torn cuts let land")
    parser.add_argument("--window", type=float, default=1.5, help="a cut comes at a random moment within this many seconds")
    parser.add_argument("--server-window", type=float, default=4.0, help="the server's cuts come within this many seconds "
                                                                         "of its restart (its publishes take a second or two)")
    parser.add_argument("--tear-every", type=int, default=2, help="every Nth cut tears unsynced writes (0: none)")
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one, removed when all went well)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    rng = random.Random(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="fault-power-"))
    (work / "logs").mkdir(parents=True, exist_ok=True)
    private, public = generate_keypair(work / "keys")
    key = load_private_key(private)
    sources = build_sources(work / "sources")
    model_ids = sources[0].info["embedder"]["model_id"], sources[0].info["verifier"]["id"]
    tree = work / "tree"
    catalogs = Catalogs(work, LocalStorage(tree), public, sources, model_ids)
    broker = Broker(work / "broker").start()
    subscriber = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", f"shelfid/{DEVICE}/events",
                                   "-q", "1", "-c", "-i", "powercut-subscriber"], stdout=open(work / "received.jsonl", "wb"),
                                  stderr=subprocess.DEVNULL)
    names = ("events", "sync", "server")
    mounts = {name: PowercutMount(work / f"disk-{name}", work / f"mnt-{name}", seed=args.seed * 7 + i, fork=True)
              for i, name in enumerate(names)}
    device = Config.model_validate({"device": {"id": DEVICE, "data_dir": str(mounts["sync"].mountpoint / "device")},
                                    "mqtt": {"enabled": False},
                                    "sync": {"server_url": tree.as_uri(), "catalog_id": "shelf", "public_key_file": str(public),
                                             "keep_versions": 2}})
    workloads = {"events": Workload(work / "logs" / "events.log", report_events, mounts["events"].mountpoint, broker.port),
                 "sync": Workload(work / "logs" / "sync.log", sync_catalogs, device, model_ids),
                 "server": Workload(work / "logs" / "server.log", serve_catalogs, mounts["server"].mountpoint, private, args.seed)}
    checks = {"events": lambda: check_outbox(mounts["events"].mountpoint, tally),
              "sync": lambda: catalogs.check(mounts["sync"].mountpoint, tally),
              "server": lambda: check_store(mounts["server"].mountpoint, private, public, tally)}
    tally = Tally()
    try:
        catalogs.publish(1, key)
        for name in names:
            mounts[name].start()
            workloads[name].start()
        for cut in range(args.cuts):
            name = names[cut % len(names)]  # in turn: each workload is cut a third of the time, the others run on
            if name == "sync":
                catalogs.publish(max(catalogs.manifests) + 1, key)  # a sync starts now: the cut may land in any step of it
            wait = rng.uniform(0, args.window)
            if name == "server":  # a moment of its life since its restart: start-up, uploads, publishes (a few seconds each)
                wait = max(0.0, workloads[name].started + rng.uniform(0, args.server_window) - time.monotonic())
            listen(list(workloads.values()), tally, wait)
            t0 = time.monotonic()
            workloads[name].kill()
            mounts[name].cut(tear=bool(args.tear_every) and cut % args.tear_every == 0)
            workloads[name].reap(tally)
            tally.cuts += 1
            t1 = time.monotonic()
            mounts[name].start()
            t2 = time.monotonic()
            checks[name]()
            t3 = time.monotonic()
            workloads[name].start()
            for phase, seconds in (("cut", t1 - t0), ("mount", t2 - t1), (f"check-{name}", t3 - t2)):
                tally.seconds[phase] = tally.seconds.get(phase, 0.0) + seconds
            if args.cuts >= 20 and (cut + 1) % max(1, args.cuts // 20) == 0:
                print(f"{cut + 1} cuts, {time.monotonic() - started:.0f} s: {len(tally.stored)} events stored, "
                      f"sync v{tally.synced}, publish v{tally.published}, {len(tally.corrupt)} problems", flush=True)
        for workload in workloads.values():
            workload.kill()
            workload.reap(tally)
        drain = Workload(work / "logs" / "events.log", drain_outbox, mounts["events"].mountpoint, broker.port).start()
        drain.reap(tally)  # the power stays on: the outbox drains
        lost, duplicates, unmarked = delivery(work / "received.jsonl", tally.stored)
    finally:
        for mount in mounts.values():
            mount.unmount()
        subscriber.terminate()
        subscriber.wait(10)
        broker.kill()
    elapsed = time.monotonic() - started
    print("time besides the waits: " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(tally.seconds.items())), file=sys.stderr)
    print(f"cuts={tally.cuts} outboxes_opened={tally.outboxes} catalogs_opened={tally.catalogs} stores_opened={tally.stores} "
          f"events_acknowledged={len(tally.stored)} lost={lost} corrupt={len(tally.corrupt)} duplicates={duplicates} "
          f"duplicates_not_marked_replayed={unmarked} "
          f"syncs_done={tally.synced} syncs_undone={tally.syncs_undone} publishes_201={tally.publishes} "
          f"workload_errors={len(tally.failures)} seconds={elapsed:.0f}")
    ok = not tally.corrupt and not lost and not unmarked
    if args.work is None and ok:
        shutil.rmtree(work, ignore_errors=True)
    elif not ok:
        print(f"work folder kept: {work}", file=sys.stderr)
    return 0 if ok else 1


def delivery(received: Path, stored: list[str], timeout: float = 60.0) -> tuple[int, int, int]:
    """(acknowledged events the subscriber never got, copies it got beyond the first, of those the ones not marked
    `replayed`), once every acknowledged event arrived or after `timeout` s."""
    wanted = set(stored)
    deadline = time.monotonic() + timeout
    while True:
        lines = received.read_text().splitlines()
        events = [json.loads(line) for line in lines[:-1] + [lines[-1] if lines and lines[-1].endswith("}") else ""] if line.strip()]
        seen: set[str] = set()
        duplicates = unmarked = 0
        for event in events:
            if event["event_id"] in seen:
                duplicates += 1
                unmarked += not event["replayed"]
            seen.add(event["event_id"])
        if wanted <= seen or time.monotonic() > deadline:
            return len(wanted - seen), duplicates, unmarked


if __name__ == "__main__":
    raise SystemExit(main())

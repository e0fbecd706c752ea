"""A fleet of simulated devices on one host: cold start, a one-product change announced on MQTT, and a rollback.

    python -m tools.fleet_sim --devices 1000 --concurrency 32 --out fleet-out/fleet.json

Every device is the real thing but its process: its own data folder and config, its own sync_agent.agent.Agent
(the real HTTPFetcher, signature check, schema, hash checks, staging and atomic switch of `current`), its own MQTT
session on a real mosquitto (sync_agent.announce.follow_announcements: one paho client, one network thread and one
subscription per device, client id shelfid-sync-<device>). The origin is nginx (tools/nginx_harness) serving the tree
sync_agent.server.publisher writes; requests and bytes are counted from nginx's access log (the combined format carries
$body_bytes_sent; each device's User-Agent names it, so bytes are per device).

Processes and threads: the devices live in spawned worker processes of at most DEVICES_PER_PROCESS (paho's network
loop uses select(), which cannot watch a descriptor numbered 1024 or above: in one process only ~320 of 1000 clients
ever connected). In a worker, each device's follower sets its wake event as in `shelfid sync`; here the event hands
the device's sync to the worker's pool instead of waking a run_forever thread, and the pools add up to --concurrency.
Real devices are independent machines; the bound only models this host (2 cores), so the times measured are this
host's, not a fleet's. A device never runs two syncs at once: an announcement heard during its sync queues one more.
Workers report each device's state on a queue; this process keeps the view, runs broker, origin and publisher, and
times everything on CLOCK_MONOTONIC, which all processes share.

Scenario: (1) cold start — v1 published and announced (retained) first, then every device starts from an empty folder,
syncs at once as run_forever does, and hears the retained announcement when it subscribes; (2) change — v2 adds one
product (one of 16 shards changes), published, then announced with the real publish_announcement: time from the
announcement until each device's `current` names v2; (3) rollback as an operator does it for a fleet — v3 published
with v1's content and announced (versions only go forward: devices refuse a lower one, and `shelfid sync --rollback`
is one device's local escape hatch); the devices still keep v1's blobs (sync.keep_versions 3), so they fetch only
the manifest and its signature.

The catalog: the sample catalog (3 products) repeated --copies times under new ids so all 16 shards are in use, as in
a real catalog; features are copies, sizes are real. Ends with one line of key=value figures; --out has everything.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import paho.mqtt.client as mqtt
from tqdm import tqdm

from edge.core.catalog import Catalog, load_catalog
from edge.core.catalog_build import write_catalog_arrays
from edge.core.config import Config, MQTTConfig
from edge.core.datadir import DataDir
from sync_agent.agent import Agent, active_version
from sync_agent.announce import follow_announcements, publish_announcement
from sync_agent.errors import SyncError
from sync_agent.server.publisher import publish
from sync_agent.server.storage import LocalStorage
from sync_agent.signing import generate_keypair, load_private_key
from tools.mqtt_harness import Broker
from tools.nginx_harness import Nginx

REPO = Path(__file__).resolve().parent.parent
log = logging.getLogger("fleet_sim")
CATALOG_ID = "shelf"
NEW_PRODUCT = "fleet-new-product"
DEVICES_PER_PROCESS = 200  # 3 descriptors per MQTT client + the syncs' sockets and files stay under 1024 (see worker_main)
MAX_TRIES = 5  # a failed sync is retried (after 0.5, 1, 2, 4 s) as run_forever's backoff would, sooner
# nginx's default "combined" log format: ... "GET /path HTTP/1.1" status body_bytes_sent "referer" "user agent"
LOG_LINE = re.compile(r'^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+)[^"]*" (\d{3}) (\d+) "[^"]*" "([^"]*)"')


def fleet_catalog(base: Catalog, copies: int, out: Path, version: int, extra: bool = False) -> Catalog:
    """`base`'s products `copies` times under ids `<id>-cNN` (+ NEW_PRODUCT, a copy of the first, when `extra`)."""
    plan = [(f"{p.product_id}-c{k:02d}", i) for k in range(copies) for i, p in enumerate(base.products)]
    plan += [(NEW_PRODUCT, 0)] if extra else []
    products, rows, images, thumbnails = [], [], [], {}
    for pid, index in plan:
        products.append(asdict(base.products[index]) | {"product_id": pid})
        for image in np.flatnonzero(base.image_product == index).tolist():
            rows.append(base.images[image] | {"product_id": pid})
            images.append(image)
        if (thumb := base.thumbnail(base.products[index].product_id)) is not None:
            thumbnails[pid] = thumb
    features = [base.features(i) for i in images]
    offsets = np.cumsum([0] + [len(f.keypoints) for f in features]).astype(np.int64)
    info = base.info | {"catalog_id": CATALOG_ID, "version": version, "products": len(products), "images": len(rows)}
    out.mkdir(parents=True)
    write_catalog_arrays(out, info, products, rows, np.asarray(base.embeddings[images]),
                         np.concatenate([f.keypoints for f in features]), np.concatenate([f.descriptors for f in features]),
                         np.concatenate([f.scores for f in features]), offsets, thumbnails)
    return load_catalog(out)


class OriginLog:
    """nginx's access log read phase by phase: what the origin served, per device (by User-Agent)."""

    def __init__(self, path: Path):
        self.path, self.offset = path, 0

    def read(self, expected: int, timeout_s: float = 10.0) -> list[tuple[str, int, int, str]]:
        """The next `expected` requests as (path, status, body bytes, device). nginx writes a line after it has sent
        the response, so the last few may trail what the devices saw: the file is re-read until they are there."""
        deadline, lines = time.monotonic() + timeout_s, []
        while True:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
            complete = data[:data.rfind(b"\n") + 1]
            lines = complete.decode("latin-1").splitlines()
            if len(lines) >= expected or time.monotonic() > deadline:
                break
            threading.Event().wait(0.05)  # no notification exists for a log line; bounded by the deadline
        self.offset += len(complete)
        parsed = [LOG_LINE.match(line) for line in lines]
        return [(m[2], int(m[3]), int(m[4]), m[5].rsplit("/", 1)[-1]) for m in parsed if m]


class Device:
    """One device, in a worker process: its Agent, its MQTT follower, and when its `current` switched."""

    def __init__(self, shard: Shard, name: str, config: Config, model_ids: tuple[str, str]):
        self.shard, self.name = shard, name
        self.agent = Agent(config, model_ids=model_ids)
        session = self.agent.fetcher.session  # the real HTTPFetcher's requests.Session
        session.headers["User-Agent"] = f"shelfid-sync fleet-sim/{name}"
        session.hooks["response"].append(self._counted)
        self.requests = 0  # responses this device received (nginx's log must reach the sum)
        self.heard = 0  # well-formed announcements its follower received (the gate asks for the active version once each)
        self.switched: dict[int, float] = {}  # version -> time.monotonic() when a sync returned with it active
        self.sync_s: dict[int, float] = {}  # version -> how long the sync that installed it ran (queueing excluded)
        self.failures: list[str] = []
        self.tries = 0  # failed syncs in a row
        self.lock = threading.Lock()
        self.pending = self.running = False
        self.wake = PoolWake(self.request)
        self.follower = follow_announcements(config.mqtt, CATALOG_ID, name, self.wake, self._active)

    def _counted(self, response, *args, **kwargs):
        with self.lock:
            self.requests += 1

    def _report(self) -> None:
        """The device's state to the coordinating process; called with self.lock held, so reports stay in order."""
        self.shard.events.put(("device", self.name, {
            "heard": self.heard, "requests": self.requests, "switched": dict(self.switched), "sync_s": dict(self.sync_s),
            "running": self.running, "pending": self.pending, "failures": list(self.failures)}))

    def _active(self) -> int:
        with self.lock:
            self.heard += 1
            self._report()
        return active_version(self.agent.layout)

    def request(self) -> None:
        """A sync wanted: queued once; if one is running, it queues the next when it ends."""
        with self.lock:
            if self.pending or self.shard.closed:
                return
            self.pending = True
            self._report()
            if self.running:
                return
        self.shard.pool.submit(self.run)

    def run(self) -> None:
        with self.lock:
            self.pending, self.running = False, True
            self._report()
        self.wake.clear()
        began = time.monotonic()
        try:
            result = self.agent.sync_once()
            with self.lock:
                if result.version not in self.switched:
                    self.switched[result.version] = time.monotonic()  # CLOCK_MONOTONIC: one clock for all processes
                    self.sync_s[result.version] = self.switched[result.version] - began
                self.tries = 0
        except SyncError as exc:  # sync_once records it in status.json; the simulation retries as run_forever would
            self.failures.append(str(exc))
            self.tries += 1
            log.warning("%s: sync failed (%d in a row): %s", self.name, self.tries, exc)
            if self.tries < MAX_TRIES:
                retry = threading.Timer(0.5 * 2 ** (self.tries - 1), self.request)
                retry.daemon = True
                retry.start()
        finally:
            self.agent.fetcher.session.close()  # after 15 min between polls a CDN has closed a kept-alive connection
            with self.lock:
                self.running, again = False, self.pending
                self._report()
            if again:
                self.shard.pool.submit(self.run)

    def stop(self) -> None:
        self.follower.disconnect()
        self.follower.loop_stop()


class PoolWake(threading.Event):
    """The wake event follow_announcements sets; setting it also asks for a sync through the pool."""

    def __init__(self, on_set):
        super().__init__()
        self.on_set = on_set

    def set(self) -> None:
        super().set()
        self.on_set()


class Shard:
    """A worker process's devices and its pool of sync threads."""

    def __init__(self, concurrency: int, events):
        self.pool = ThreadPoolExecutor(concurrency, thread_name_prefix="sync")
        self.events, self.devices, self.closed = events, [], False

    def close(self) -> None:
        self.closed = True
        for device in self.devices:
            device.stop()
        self.pool.shutdown(wait=True)


def worker_main(names: list[str], settings: dict, events, commands) -> None:
    """One process's share of the fleet: paho watches each client's sockets with select(), which fails on descriptors
    of 1024 and above (the client then reconnects for ever), so one process holds at most DEVICES_PER_PROCESS devices."""
    logging.basicConfig(level=settings["log_level"], format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        shard = Shard(settings["concurrency"], events)
        for name in names:
            config = device_config(Path(settings["root"]), name, settings["origin_url"], Path(settings["public_key"]),
                                   settings["broker_port"])
            shard.devices.append(Device(shard, name, config, settings["model_ids"]))
            shard.devices[-1].request()  # as `shelfid sync` does at start
        events.put(("ready", None, None))
        commands.get()
        shard.close()
        events.put(("stopped", None, None))
    except Exception as exc:  # the coordinator says it and stops
        events.put(("error", None, f"{type(exc).__name__}: {exc}"))


class Fleet:
    """The coordinator's view of every device, kept from the workers' reports."""

    def __init__(self, names: list[str], concurrency: int):
        self.names, self.concurrency = names, concurrency
        empty = {"heard": 0, "requests": 0, "switched": {}, "sync_s": {}, "running": False, "pending": False, "failures": []}
        self.views = {name: SimpleNamespace(name=name, **empty) for name in names}
        self.cond = threading.Condition()
        self.counts = {"ready": 0, "stopped": 0}
        self.errors: list[str] = []
        self.context = multiprocessing.get_context("spawn")  # fork would copy this process's threads' locks
        self.events = self.context.Queue()
        self.workers: list[tuple] = []

    @property
    def devices(self) -> list[SimpleNamespace]:
        return list(self.views.values())

    def start(self, settings: dict) -> float:
        """Workers started, each creating its devices and asking each for a first sync; returns the instant before."""
        t0 = time.monotonic()
        threading.Thread(target=self._read, name="fleet-events", daemon=True).start()
        groups = [self.names[i:i + DEVICES_PER_PROCESS] for i in range(0, len(self.names), DEVICES_PER_PROCESS)]
        base, extra = divmod(self.concurrency, len(groups))
        for i, group in enumerate(groups):
            share = max(1, base + (i < extra))  # the pools add up to --concurrency
            commands = self.context.Queue()
            process = self.context.Process(target=worker_main, args=(group, settings | {"concurrency": share}, self.events,
                                                                        commands), daemon=True)
            process.start()
            self.workers.append((process, commands))
        self._wait_count("ready", len(groups), "starting devices")
        return t0

    def _read(self) -> None:
        while True:
            kind, name, body = self.events.get()
            with self.cond:
                if kind == "device":
                    vars(self.views[name]).update(body)
                elif kind == "error":
                    self.errors.append(body)
                else:
                    self.counts[kind] += 1
                self.cond.notify_all()

    def _wait_count(self, kind: str, count: int, label: str) -> None:
        with tqdm(total=len(self.names), desc=label, unit="dev") as bar, self.cond:
            while self.counts[kind] < count:
                if self.errors:
                    raise RuntimeError(f"a fleet worker failed: {self.errors[0]}")
                bar.update(sum(1 for d in self.views.values() if d.requests or d.pending or d.running) - bar.n)
                self.cond.wait(1.0)

    def wait_switched(self, version: int, timeout_s: float, label: str) -> None:
        """Until every device's sync has returned with `version` active (or the timeout); a tqdm bar meanwhile."""
        deadline = time.monotonic() + timeout_s
        with tqdm(total=len(self.names), desc=label, unit="dev") as bar, self.cond:
            while True:
                done = sum(version in d.switched for d in self.views.values())
                bar.update(done - bar.n)
                if done == len(self.names) or time.monotonic() > deadline or self.errors:
                    return
                self.cond.wait(min(1.0, max(deadline - time.monotonic(), 0.01)))

    def wait_heard(self, count: int, timeout_s: float) -> bool:
        """Until every follower has received `count` announcements (the retained one proves it subscribed)."""
        with self.cond:
            return self.cond.wait_for(lambda: all(d.heard >= count for d in self.views.values()), timeout_s)

    def wait_idle(self, timeout_s: float) -> bool:
        """Until no device has a sync running or queued: a phase's last requests are in before it is counted."""
        with self.cond:
            return self.cond.wait_for(lambda: not any(d.running or d.pending for d in self.views.values()), timeout_s)

    def close(self) -> None:
        for _, commands in self.workers:
            commands.put("stop")
        with self.cond:
            self.cond.wait_for(lambda: self.counts["stopped"] == len(self.workers) or bool(self.errors), 120)
        for process, _ in self.workers:
            process.join(30)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def phase_report(fleet: Fleet, origin: OriginLog, version: int, t0: float, expected_requests: int, root: Path) -> dict:
    """What one phase took: switch times from t0, `current` checked on disk, and the origin's side from its log."""
    times = [d.switched[version] - t0 for d in fleet.devices if version in d.switched]
    syncs = [d.sync_s[version] for d in fleet.devices if version in d.sync_s]
    on_disk = sum(active_version(DataDir(root / d.name)) == version for d in fleet.devices)
    served = origin.read(expected_requests)
    per_device: dict[str, int] = {d.name: 0 for d in fleet.devices}
    statuses: dict[str, int] = {}
    for _path, status, size, device in served:
        per_device[device] = per_device.get(device, 0) + size
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    sizes = list(per_device.values())
    return {"version": version, "devices": len(fleet.devices), "switched": on_disk, "answered": len(times),
            "p50_s": percentile(times, 50), "p95_s": percentile(times, 95), "max_s": max(times, default=float("nan")),
            "one_sync_p50_s": percentile(syncs, 50), "one_sync_p95_s": percentile(syncs, 95),
            "bytes_per_device": statistics.mean(sizes) if sizes else 0, "bytes_per_device_max": max(sizes, default=0),
            "origin_requests": len(served), "origin_bytes": sum(s for _, _, s, _ in served), "origin_statuses": statuses,
            "origin_blob_requests": sum(p.startswith("/blobs/") for p, *_ in served)}


def device_config(root: Path, name: str, origin_url: str, public_key: Path, broker_port: int) -> Config:
    return Config.model_validate({
        "device": {"id": name, "data_dir": str(root / name)},
        "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker_port},
        "sync": {"server_url": origin_url, "catalog_id": CATALOG_ID, "public_key_file": str(public_key)},
    })


def run_phase(fleet: Fleet, origin: OriginLog, label: str, version: int, start, timeout_s: float, root: Path) -> dict:
    """`start()` sets the phase off (returns its t0); then wait for every device to have `version`, and report."""
    before, heard = sum(d.requests for d in fleet.devices), sum(d.heard for d in fleet.devices)
    t0 = start()
    fleet.wait_switched(version, timeout_s, label)
    fleet.wait_idle(timeout_s)  # e.g. a second sync woken by the retained announcement during the first
    report = phase_report(fleet, origin, version, t0, sum(d.requests for d in fleet.devices) - before, root)
    report["wall_s"] = time.monotonic() - t0
    report["announcements_heard"] = sum(d.heard for d in fleet.devices) - heard
    print(f"{label}: " + " ".join(f"{k}={fmt(v)}" for k, v in report.items() if not isinstance(v, dict)), flush=True)
    return report


def fmt(value) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


class BrokerCounter:
    """mosquitto's own count of PUBLISH packets it has sent ($SYS/broker/publish/messages/sent, every sys_interval).
    The counter's own $SYS messages are counted by it and taken out of the figure."""

    TOPIC = "$SYS/broker/publish/messages/sent"

    def __init__(self, port: int):
        self.cond = threading.Condition()
        self.samples: list[tuple[float, int]] = []  # (arrival, value)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fleet-sim-counter")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(self.TOPIC, qos=0)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        with self.cond:
            self.samples.append((time.monotonic(), int(message.payload)))
            self.cond.notify_all()

    def after(self, t: float, timeout_s: float = 5.0) -> tuple[int, int] | None:
        """(value, index) of the first sample that arrived after `t`, which counts everything sent before `t`."""
        with self.cond:
            self.cond.wait_for(lambda: any(at > t for at, _ in self.samples), timeout_s)
            found = [(value, i) for i, (at, value) in enumerate(self.samples) if at > t]
        return found[0] if found else None

    def sent_between(self, start: tuple[int, int] | None, end: tuple[int, int] | None) -> int | None:
        """PUBLISH packets the broker sent between two samples, less the counter's own (±1: a sample's own sending)."""
        if start is None or end is None:
            return None
        return end[0] - start[0] - (end[1] - start[1])

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def announce(broker_port: int, version: int) -> float:
    """The real announcement (retained, QoS 1, acknowledged); returns the instant it was handed to the broker."""
    t0 = time.monotonic()
    publish_announcement(MQTTConfig(host="127.0.0.1", port=broker_port), CATALOG_ID, version)
    return t0


def simulate(args, work: Path) -> dict:
    keys = generate_keypair(work / "keys")
    key = load_private_key(keys[0])
    base = load_catalog(args.catalog) if args.catalog else sample_base(work / "base")
    model_ids = (base.info["embedder"]["model_id"], base.info["verifier"]["id"])
    storage = LocalStorage(work / "public")
    v1 = fleet_catalog(base, args.copies, work / "v1", 1)
    v2 = fleet_catalog(base, args.copies, work / "v2", 2, extra=True)
    broker = Broker(work / "broker")
    with open(broker.conf, "a") as conf:
        conf.write("sys_interval 1\n")  # $SYS counters every second (default 10)
    broker.start()
    nginx = Nginx(work / "nginx", docroot=storage.root).start()
    names = [f"fleet-{i:05d}" for i in range(args.devices)]
    origin, fleet, counter = OriginLog(work / "nginx" / "access.log"), Fleet(names, args.concurrency), BrokerCounter(broker.port)
    root = work / "devices"
    settings = {"root": str(root), "origin_url": nginx.url, "public_key": str(keys[1]), "broker_port": broker.port,
                "model_ids": model_ids, "log_level": args.log_level}
    report: dict = {"catalog": catalog_figures(v1, v2)}
    try:
        published = publish(storage, v1, CATALOG_ID, key, 1)
        announce(broker.port, 1)
        report["catalog"]["v1_blobs"] = published.blobs
        marks = [counter.after(time.monotonic())]
        report["cold"] = run_phase(fleet, origin, "cold start v1", 1, lambda: fleet.start(settings), args.timeout_s, root)
        report["cold"]["subscribed"] = fleet.wait_heard(1, min(args.timeout_s, 120))  # the retained v1 reached every follower
        marks.append(counter.after(time.monotonic()))
        report["cold"]["broker_publishes_sent"] = counter.sent_between(*marks[-2:])
        for name, version, catalog in (("change", 2, v2), ("rollback", 3, v1)):
            done = publish(storage, catalog, CATALOG_ID, key, version)
            label = "change v2" if version == 2 else "rollback v3=v1"
            phase = run_phase(fleet, origin, label, version, lambda v=version: announce(broker.port, v), args.timeout_s, root)
            marks.append(counter.after(time.monotonic()))
            report[name] = phase | {"new_blobs_published": done.new_blobs, "blobs_in_manifest": done.blobs,
                                    "broker_publishes_sent": counter.sent_between(*marks[-2:])}
        report["broker_publishes_sent_total"] = counter.sent_between(marks[0], marks[-1])
        report["sync_failures"] = sum(len(d.failures) for d in fleet.devices)
        report["failure_examples"] = sorted({f for d in fleet.devices for f in d.failures})[:5]
        report["data_dir_bytes_per_device"] = tree_bytes(root) / max(args.devices, 1)
    finally:
        fleet.close()
        counter.close()
        nginx.stop()
        broker.stop()
    return report


def sample_base(out: Path) -> Catalog:
    """samples/shelf-catalog built with the default models (what the devices run)."""
    from edge.bench.pipeline import sample_catalog

    return load_catalog(sample_catalog(Config(), out, CATALOG_ID))


def catalog_figures(v1: Catalog, v2: Catalog) -> dict:
    return {"products_v1": len(v1.products), "products_v2": len(v2.products), "images_v1": len(v1.images),
            "v1_folder_bytes": tree_bytes(v1.path), "v2_folder_bytes": tree_bytes(v2.path)}


def tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def summary_line(report: dict, args, wall_s: float) -> str:
    change, cold, back = report["change"], report["cold"], report["rollback"]
    figures = {
        "devices": args.devices, "switched": change["switched"], "p95_s": change["p95_s"],
        "bytes_per_device": round(change["bytes_per_device"]), "origin_requests": change["origin_requests"],
        "p50_s": change["p50_s"], "max_s": change["max_s"], "one_sync_p50_s": change["one_sync_p50_s"],
        "origin_bytes": change["origin_bytes"], "broker_sent": change["broker_publishes_sent"],
        "announcements_heard": change["announcements_heard"], "cold_switched": cold["switched"], "cold_s": cold["max_s"],
        "cold_bytes_per_device": round(cold["bytes_per_device"]), "cold_subscribed": cold["subscribed"],
        "cold_origin_requests": cold["origin_requests"],
        "rollback_switched": back["switched"], "rollback_p95_s": back["p95_s"],
        "rollback_bytes_per_device": round(back["bytes_per_device"]), "sync_failures": report["sync_failures"],
        "concurrency": args.concurrency, "wall_s": wall_s,
    }
    return " ".join(f"{k}={fmt(v)}" for k, v in figures.items())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000, help="simulated devices (default 1000)")
    parser.add_argument("--concurrency", type=int, default=32,
                        help="syncs running at once on this host (default 32); real devices are independent")
    parser.add_argument("--copies", type=int, default=16,
                        help="times the sample catalog's 3 products are repeated (default 16: 48 products, all 16 shards)")
    parser.add_argument("--catalog", type=Path, help="a built base catalog folder (default: build samples/shelf-catalog)")
    parser.add_argument("--work", type=Path, help="folder for everything (default: a temporary folder, removed)")
    parser.add_argument("--timeout-s", type=float, default=1800, help="most seconds one phase may take (default 1800)")
    parser.add_argument("--out", type=Path, help="write the full report as JSON here")
    parser.add_argument("--log-level", default="WARNING", help="the agents' log level (default WARNING: 1000 devices talk)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    work = args.work or Path(tempfile.mkdtemp(prefix="fleet-sim-"))
    try:
        report = simulate(args, work)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    wall_s = time.monotonic() - started
    report |= {"args": {k: str(v) for k, v in vars(args).items()}, "wall_s": wall_s,
               "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    print(summary_line(report, args, wall_s), flush=True)
    return 0 if report["change"]["switched"] == args.devices else 1


if __name__ == "__main__":
    sys.exit(main())

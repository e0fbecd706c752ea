#!/usr/bin/env python3
"""Kill -9 the sync agent at many points of a sync; `current` must always name a complete, loadable catalog.

    python -m tools.fault_sync --kills 50

Starts a catalog server on loopback (static bundle tree over HTTP), publishes a
new version before each round (products added and removed, so shards change),
runs the real agent (`shelfid sync --once`) as a process and SIGKILLs it at a
point spread across a measured sync's duration; then checks that `current`
opens with the daemon's loader and names the old or the new version, and that
the next run completes. Ends with one line `kills=… always_loadable=…
completed=…`; exits 0 only when every check held.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from edge.core.assembly import Models
from edge.core.catalog import load_catalog
from edge.core.catalog_build import build_catalog
from edge.core.config import Config
from edge.core.errors import CatalogError
from sync_agent.server.app import ServerSettings, create_app
from sync_agent.server.publisher import publish
from sync_agent.server.storage import LocalStorage
from sync_agent.signing import generate_keypair, load_private_key
from tools.http_harness import ServerThread

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "shelf-catalog"
SUBSETS = (("cha-mate-limao", "cha-mate-natural", "coca-cola-can"), ("cha-mate-limao", "coca-cola-can"),
           ("cha-mate-natural", "coca-cola-can"), ("cha-mate-limao", "cha-mate-natural"))
STARTED = "sync: checking"


def build_subsets(work: Path) -> list:
    """One catalog per product subset, computed once with the device's models."""
    models = Models.open(Config())
    detector, embedder, verifier = models.detector, models.embedder, models.verifier
    catalogs = []
    for i, products in enumerate(SUBSETS):
        images = work / f"images-{i}"
        for pid in products:
            shutil.copytree(SAMPLE / pid, images / pid)
        build_catalog(images, work / f"catalog-{i}", embedder, verifier, detector, "shelf")
        catalogs.append(load_catalog(work / f"catalog-{i}"))
    return catalogs


def run_agent(config: Path, kill_after: float | None = None) -> tuple[int, float]:
    """(exit code, seconds from the agent's first sync line to its end); SIGKILL `kill_after` s after that line."""
    process = subprocess.Popen([sys.executable, "-m", "edge.cli", "--log-level", "INFO", "sync", "--once", "--config", str(config)],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    started = None
    for line in process.stderr:
        if STARTED in line:
            started = time.monotonic()
            break
    if started is None:
        return process.wait(), 0.0
    if kill_after is not None:
        try:
            process.wait(kill_after)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
    process.stderr.read()
    code = process.wait()
    return code, time.monotonic() - started


def current_version(data_dir: Path, embedder_id: str, verifier_id: str) -> int | None:
    """The version `current` names, opened as the daemon opens it; None when there is no `current`."""
    current = data_dir / "catalogs" / "current"
    if not current.exists() and not current.is_symlink():
        return None
    return load_catalog(current, embedder_id, verifier_id).version


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50, help="SIGKILLs, one per published version")
    parser.add_argument("--seed", type=int, default=0, help="jitter of the kill points")
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="fault-sync-"))
    private, public = generate_keypair(work / "keys")
    key = load_private_key(private)
    catalogs = build_subsets(work)
    embedder_id, verifier_id = catalogs[0].info["embedder"]["model_id"], catalogs[0].info["verifier"]["id"]
    storage = LocalStorage(work / "server" / "public")
    server = ServerThread(create_app(ServerSettings(root=work / "server", signing_key=private, token="unused"))).start()
    data_dir = work / "device"
    config = work / "device.yaml"
    config.write_text(f"device: {{id: fault, data_dir: {data_dir}}}\nmqtt: {{enabled: false}}\n"
                      f"sync: {{server_url: '{server.url}', catalog_id: shelf, public_key_file: {public}, keep_versions: 2}}\n")
    publish(storage, catalogs[0], "shelf", key, 1)
    code, full = run_agent(config)
    deltas = []
    for version in (2, 3):  # the quicker of two: a sync slowed by a busy machine would put the kill points past the end
        publish(storage, catalogs[version % len(catalogs)], "shelf", key, version)
        code2, seconds = run_agent(config)
        code, deltas = code or code2, [*deltas, seconds]
    if code:
        print(f"error: the agent failed without any kill (exit {code})", file=sys.stderr)
        return 1
    delta = min(deltas)
    span = delta * 1.1  # each round is a delta sync (one or two shards change)
    print(f"a full sync takes {full:.2f} s, a delta {delta:.2f} s; killing at points across 0–{span:.2f} s")
    loadable = completed = killed_mid = 0
    for i in tqdm(range(args.kills), desc="kills", disable=None):
        version += 1
        publish(storage, catalogs[version % len(catalogs)], "shelf", key, version)
        point = span * (i + rng.random()) / args.kills
        code, _ = run_agent(config, kill_after=point)
        killed_mid += code == -signal.SIGKILL
        try:
            loadable += current_version(data_dir, embedder_id, verifier_id) in (version - 1, version)
        except CatalogError as exc:
            tqdm.write(f"kill {i} at {point:.3f} s: current does not load: {exc}")
        code, _ = run_agent(config)
        try:
            completed += code == 0 and current_version(data_dir, embedder_id, verifier_id) == version
        except CatalogError as exc:
            tqdm.write(f"kill {i}: the next run did not leave a loadable current: {exc}")
    server.stop()
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    print(f"killed mid-sync {killed_mid} times (the rest finished before their kill point)")
    print(f"kills={args.kills} always_loadable={loadable} completed={completed}")
    return 0 if loadable == completed == args.kills else 1


if __name__ == "__main__":
    raise SystemExit(main())

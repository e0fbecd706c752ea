"""A real RTSP camera on a free loopback port (tools/rtsp_server.py) that can be stopped, restarted and frozen.

Used by tests/edge/test_rtsp.py and tools/soak.py. Frozen = the server process is SIGSTOPped: connections stay
open and new ones are accepted by the kernel, but nothing is sent, as with a camera whose encoder hangs.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import cv2

from tools.mqtt_harness import free_port

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's GStreamer bindings (python3-gi) live there, not in the venv
SERVER = Path(__file__).with_name("rtsp_server.py")
PACKAGES = "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly"


def rtsp_server_missing() -> str | None:
    """Why the RTSP server cannot run here, or None."""
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                            "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
                            "assert Gst.ElementFactory.find('x264enc'), 'x264enc'"], capture_output=True, text=True) \
        if Path(SYSTEM_PYTHON).exists() else None
    if probe is None or probe.returncode != 0:
        return f"the GStreamer RTSP server is not installed (apt-get install {PACKAGES}; `make test` does)"
    return None


def video_to_frames(video: Path, folder: Path, limit: int | None = None) -> Path:
    """The frames the server streams: 00000.jpg, 00001.jpg, … from a video."""
    folder.mkdir(parents=True, exist_ok=True)
    capture = cv2.VideoCapture(str(video))
    count = 0
    while limit is None or count < limit:
        ok, frame = capture.read()
        if not ok:
            break
        cv2.imwrite(str(folder / f"{count:05d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
        count += 1
    capture.release()
    if count == 0:
        raise RuntimeError(f"{video}: no frames could be read")
    return folder


class RtspCamera:
    def __init__(self, frames: Path, folder: Path, port: int | None = None, fps: int = 15):
        self.frames, self.folder, self.port, self.fps = frames, folder, port or free_port(), fps
        self.url = f"rtsp://127.0.0.1:{self.port}/shelf"
        self.process: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def start(self, timeout: float = 15.0) -> RtspCamera:
        """Start the server and return once it listens (its `ready` line)."""
        self.process = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), "--frames", str(self.frames), "--port", str(self.port),
                                         "--fps", str(self.fps)], stdout=subprocess.PIPE, text=True,
                                        stderr=open(self.folder / "rtsp-server.log", "ab"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()  # blocks until the line or the process's end
            if line.startswith("ready "):
                return self
            if not line and self.process.poll() is not None:
                break
        log = (self.folder / "rtsp-server.log").read_text(errors="replace")[-1000:]
        self.stop()
        raise RuntimeError(f"the RTSP server did not start on port {self.port}: {log}")

    def stop(self) -> None:
        """The camera goes away: the server ends (connections are closed)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)  # a frozen server could not act on SIGTERM
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def freeze(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

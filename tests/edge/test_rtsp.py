"""A real network camera: the sample video as H.264 over RTSP from GStreamer's RTSP server on loopback.

The daemon reads it through its RTSP source (OpenCV + FFmpeg, TCP); the test stops the server, restarts it and
freezes it (SIGSTOP: connected, silent), and checks what an operator sees: the camera reported lost over MQTT,
the watchdog fed while the grabber retries (a restart would not bring the camera back), and frames processed
again within 10 s of the stream's return, in the same process.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time

import pytest

from edge.core.config import CameraConfig, Config
from edge.daemon.camera import JETSON_RTSP_TEMPLATE, RTSP_GSTREAMER_TEMPLATE, CameraError, open_source
from edge.daemon.run import run
from tests.conftest import REPO
from tools.mqtt_harness import Broker, Recorder
from tools.rtsp_harness import RtspCamera, rtsp_server_missing, video_to_frames

pytestmark = pytest.mark.skipif(bool(rtsp_server_missing()), reason=rtsp_server_missing() or "")
RECOVERY_LIMIT_S = 10.0


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    return video_to_frames(REPO / "samples" / "shelf.mp4", tmp_path_factory.mktemp("rtsp-frames"))


@pytest.fixture
def camera(frames, tmp_path):
    server = RtspCamera(frames, tmp_path / "rtsp").start()
    yield server
    server.stop()


def test_the_rtsp_source_reads_the_stream_and_fails_fast_when_nothing_listens(camera):
    source = open_source(CameraConfig(source=camera.url))
    source.open()
    shapes = {source.read().shape for _ in range(10)}
    source.close()
    assert shapes == {(360, 640, 3)}
    camera.stop()
    refused = open_source(CameraConfig(source=camera.url, open_timeout_s=2.0))
    started = time.monotonic()
    with pytest.raises(CameraError, match="cannot open rtsp source"):
        refused.open()
    assert time.monotonic() - started < 10  # a refused connection is not waited on for the whole timeout


APPSINK = "appsink drop=true max-buffers=1 sync=false"


@pytest.mark.parametrize("template", [RTSP_GSTREAMER_TEMPLATE, JETSON_RTSP_TEMPLATE], ids=["software", "jetson"])
def test_the_gstreamer_rtsp_templates_decode_the_stream_to_bgr_frames(camera, template):
    """The GStreamer half of the pipeline path, run by gst-launch (pip's OpenCV has no GStreamer backend for the appsink)."""
    assert template.endswith(APPSINK)
    if "nvv4l2decoder" in template and subprocess.run(["gst-inspect-1.0", "nvv4l2decoder"], capture_output=True).returncode != 0:
        pytest.skip("nvv4l2decoder and nvvidconv are Jetson elements: the Jetson template can run only on a Jetson")
    line = template.format(url=camera.url).replace(APPSINK, "identity eos-after=30 ! fakesink sync=false")
    run = subprocess.run(["gst-launch-1.0", "-v", *line.split()], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout[-1500:] + run.stderr[-1500:]
    caps = [line for line in run.stdout.splitlines() if "identity0.GstPad:src: caps = video/x-raw" in line]
    assert caps and all(f in caps[0] for f in ("width=(int)640", "height=(int)360", "format=(string)BGR"))  # what the appsink gets
    assert 'Got EOS from element "pipeline0"' in run.stdout  # 30 decoded frames passed, then the end we asked for


class Watch:
    """What the daemon shows from outside: frames processed (on_frame), camera state over MQTT, watchdog pings."""

    def __init__(self, recorder: Recorder, sock: socket.socket):
        self.recorder, self.sock = recorder, sock
        self.frame_times: list[float] = []
        self.pings: list[float] = []
        self._frame = threading.Condition()
        self._listen = threading.Thread(target=self._read_socket, daemon=True)
        self._listen.start()

    def on_frame(self, frame, pipeline) -> None:
        with self._frame:
            self.frame_times.append(time.monotonic())
            self._frame.notify_all()

    def _read_socket(self) -> None:
        while True:
            try:
                message = self.sock.recv(256).decode()
            except OSError:
                return
            if message == "WATCHDOG=1":
                self.pings.append(time.monotonic())

    def next_frame_after(self, moment: float, timeout: float = 30.0) -> float | None:
        with self._frame:
            self._frame.wait_for(lambda: self.frame_times and self.frame_times[-1] > moment, timeout)
            later = [t for t in self.frame_times if t > moment]
            return later[0] if later else None

    def camera_states(self) -> list[str]:
        return [json.loads(p)["camera"] for p in self.recorder.payloads("/stats")]

    def wait_camera(self, state: str, after: int, timeout: float = 30.0) -> bool:
        """A stats message with camera `state` among those after the first `after`."""
        return self.recorder.wait_for(lambda r: state in self.camera_states()[after:], timeout)


def test_the_daemon_survives_an_rtsp_camera_that_goes_away_and_one_that_freezes(camera, tmp_path, monkeypatch, sample_catalog_dir):
    broker = Broker(tmp_path / "broker").start()
    recorder = Recorder(broker.port)
    address = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    watch = Watch(recorder, sock)
    config = Config.model_validate({"device": {"id": "rtsp", "data_dir": str(tmp_path / "data")},
                                    "camera": {"source": camera.url, "name": "aisle"},  # every camera setting at its default
                                    "mqtt": {"host": "127.0.0.1", "port": broker.port}})
    stop, result = threading.Event(), {}
    daemon = threading.Thread(target=lambda: result.update(run(config, sample_catalog_dir, stop=stop, on_frame=watch.on_frame)))
    daemon.start()
    try:
        assert watch.next_frame_after(0.0, timeout=120) is not None, "no frame from the RTSP camera"
        measured = {}

        # 1. the camera goes away (server ends: connection closed) and comes back on the same address
        seen = len(watch.camera_states())
        gone = time.monotonic()
        camera.stop()
        assert watch.wait_camera("lost", seen), "the lost camera was not reported over MQTT"
        measured["lost_after_stop_s"] = time.monotonic() - gone
        time.sleep(3.0)  # an outage of a few seconds (the scenario, not a synchronisation)
        pings_while_lost = [t for t in watch.pings if t > gone + measured["lost_after_stop_s"]]
        seen = len(watch.camera_states())
        camera.start()
        back = time.monotonic()
        first = watch.next_frame_after(back)
        assert first is not None and first - back <= RECOVERY_LIMIT_S, f"frames again {first and first - back:.1f} s after return"
        measured["frames_after_return_s"] = first - back
        assert watch.wait_camera("ok", seen)
        assert pings_while_lost, "the watchdog starved while the grabber was retrying: systemd would restart a healthy daemon"

        # 2. the camera freezes: the connection stays open, nothing arrives
        seen = len(watch.camera_states())
        frozen = time.monotonic()
        camera.freeze()
        assert watch.wait_camera("lost", seen, timeout=40), "the frozen camera was not reported lost"
        reported = time.monotonic()
        measured["lost_after_freeze_s"] = reported - frozen
        camera.thaw()
        thawed = time.monotonic()
        # (FFmpeg hands over the two frames its decoder held after the freeze, then nothing until the thaw)
        assert not [t for t in watch.frame_times if reported < t < thawed]
        first = watch.next_frame_after(thawed)
        assert first is not None and first - thawed <= RECOVERY_LIMIT_S, f"frames again {first and first - thawed:.1f} s after thaw"
        measured["frames_after_thaw_s"] = first - thawed
    finally:
        stop.set()
        daemon.join(60)
        sock.close()
        recorder.close()
        broker.kill()
    assert not daemon.is_alive()
    assert result["camera_reconnects"] >= 2  # reopened twice, in the same process: no restart was needed
    print("rtsp recovery:", " ".join(f"{k}={v:.1f}" for k, v in measured.items()))

"""Camera sources and the grabber: files end cleanly, slow consumers drop frames, lost cameras come back."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from edge.core.config import CameraConfig
from edge.daemon.camera import CameraError, ImageFolderSource, guess_kind, open_source
from edge.daemon.grabber import Grabber
from tests.conftest import SAMPLES


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A short real video: the sample shelf frames, 10 copies each, at 30 fps."""
    path = tmp_path_factory.mktemp("video") / "shelf.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 360))
    for frame in sorted(SAMPLES.glob("*.jpg")):
        image = cv2.resize(cv2.imread(str(frame)), (640, 360))
        for _ in range(10):
            writer.write(image)
    writer.release()
    return path


@pytest.mark.parametrize("source,kind", [("0", "v4l2"), ("/dev/video2", "v4l2"), ("rtsp://cam/stream", "rtsp"),
                                         ("videotestsrc ! appsink", "gstreamer"), ("/x/y.mp4", "file")])
def test_source_kind_is_guessed_from_its_form(source, kind):
    assert guess_kind(source) == kind


def test_a_video_file_is_read_to_the_end_and_ends_cleanly(video):
    grabber = Grabber(open_source(CameraConfig(source=str(video), realtime=False))).start()
    frames = []
    while (frame := grabber.get(timeout=10)) is not None:
        frames.append(frame)
    assert grabber.status == "ended" and grabber.grabbed == 40
    assert frames and frames[0].image.shape == (360, 640, 3)
    assert len(frames) + grabber.dropped == 40


def test_a_slow_consumer_gets_the_latest_frame_and_the_rest_are_counted_as_dropped(video):
    grabber = Grabber(open_source(CameraConfig(source=str(video), realtime=True, fps=30))).start()
    taken = []
    while (frame := grabber.get(timeout=10)) is not None:
        taken.append(frame.index)
        threading.Event().wait(0.2)  # a pipeline much slower than the camera
    assert grabber.grabbed == 40 and grabber.dropped >= 20
    assert len(taken) + grabber.dropped == 40 and taken == sorted(taken)


def test_image_folder_source_in_name_order():
    source = ImageFolderSource(CameraConfig(source=str(SAMPLES), realtime=False))
    source.open()
    frames = [source.read() for _ in range(5)]
    assert [f is None for f in frames] == [False] * 4 + [True]


def test_missing_file_is_a_camera_error(tmp_path):
    with pytest.raises(CameraError, match="no video file at"):
        open_source(CameraConfig(source=str(tmp_path / "none.mp4"), kind="file")).open()


class FlakySource:
    """A live camera that fails, stalls and comes back (the hardware we cannot have here)."""

    name, live = "flaky", True

    def __init__(self, frames: list[np.ndarray]):
        self.frames, self.opens, self.reads = frames, 0, 0
        self.recovered = threading.Event()

    def open(self):
        self.opens += 1
        if self.opens in (2, 3):  # the first two reopen attempts fail
            raise CameraError("camera flaky: cannot open")

    def read(self):
        self.reads += 1
        if self.reads == 5:
            raise CameraError("camera flaky: stream closed")
        if self.opens >= 4:
            self.recovered.set()
        return self.frames[self.reads % len(self.frames)]

    def close(self):
        pass


def test_a_lost_camera_is_reopened_with_backoff_and_never_ends(shelf_frames):
    source = FlakySource(shelf_frames)
    grabber = Grabber(source, backoff_min_s=0.01, backoff_max_s=0.05).start()
    assert source.recovered.wait(10)
    assert grabber.get(timeout=5) is not None and grabber.status == "ok"
    assert grabber.reconnects == 3 and source.opens == 4
    grabber.stop()
    assert grabber.status == "stopped"


class HangingOpen:
    """A live camera whose reopen hangs inside the driver (never returns until released)."""

    name, live = "hanging", True

    def __init__(self):
        self.opens, self.hanging, self.release = 0, threading.Event(), threading.Event()

    def open(self):
        self.opens += 1
        if self.opens == 1:
            raise CameraError("camera hanging: cannot open")
        self.hanging.set()
        self.release.wait(30)
        raise CameraError("camera hanging: released")

    def read(self):
        return None

    def close(self):
        pass


def test_a_source_call_that_does_not_return_is_stuck_while_a_retrying_grabber_is_not():
    source = HangingOpen()
    grabber = Grabber(source, backoff_min_s=0.01, backoff_max_s=0.05).start()
    assert source.hanging.wait(10)
    assert grabber.status == "lost" and not grabber.stuck(after_s=5.0)  # retrying: lost, not hung
    assert source.release.wait(0.3) is False  # a window for the hang to last
    assert grabber.stuck(after_s=0.2)
    source.release.set()
    grabber.stop()
    assert not grabber.stuck(after_s=0.2)


def test_a_file_replayed_as_fast_as_possible_loses_no_frame_to_a_slow_consumer(video):
    grabber = Grabber(open_source(CameraConfig(source=str(video), realtime=False)), lossless=True).start()
    taken = []
    while (frame := grabber.get(timeout=10)) is not None:
        taken.append(frame.index)
        threading.Event().wait(0.005)
    assert taken == list(range(40)) and grabber.dropped == 0


class FlakyThenEnds(FlakySource):
    """Fails and stalls like FlakySource, at a camera's 30 fps, then ends after 60 reads (so the daemon returns)."""

    def read(self):
        time.sleep(1 / 30)  # a camera's frame interval: the daemon gets time to process some of them
        if self.recovered.is_set() and self.reads > 60:
            return None
        return super().read()


def test_the_daemon_survives_a_camera_that_fails_and_comes_back(tmp_path, shelf_frames, sample_catalog_dir):
    from edge.core.config import Config
    from edge.daemon.run import run

    config = Config.model_validate({"device": {"id": "flaky", "data_dir": str(tmp_path / "data")}, "mqtt": {"enabled": False},
                                    "camera": {"source": "0", "reconnect_min_s": 0.01, "reconnect_max_s": 0.05}})
    frames = [cv2.resize(f, (640, 360)) for f in shelf_frames]
    summary = run(config, sample_catalog_dir, source=FlakyThenEnds(frames))
    assert summary["camera_reconnects"] == 3 and summary["camera"] == "ended"
    assert summary["frames"] >= 5 and summary["frames"] + summary["dropped_frames"] >= 55  # it kept processing after

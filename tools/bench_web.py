#!/usr/bin/env python3
"""What the installer's page costs the pipeline: FPS with the page closed vs open in headless Chromium, in one run.

    python -m tools.bench_web [--loops 3] [--screenshot docs/web-page.png]

Runs the daemon (`edge.daemon.run.run`, page enabled) twice on the sample video
played `loops` times as fast as the loop can (lossless): once with nobody
watching, once with the page open in headless Chromium (live view at the
configured snapshot rate, status and events polled every 2 s). Prints both
FPS and the ratio; optionally saves a screenshot of the page.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
import weakref
from pathlib import Path

import requests

from edge.bench.pipeline import sample_catalog
from edge.core.config import CameraConfig, Config
from edge.daemon.camera import CaptureSource
from edge.daemon.run import run
from tools.mqtt_harness import free_port

REPO = Path(__file__).resolve().parent.parent
VIDEO = REPO / "samples" / "shelf.mp4"


class LoopingVideo(CaptureSource):
    """A video file played `loops` times, at its own rate (`realtime`) or as fast as it is read."""

    def __init__(self, video: Path, loops: int, realtime: bool = True):
        super().__init__(CameraConfig(source=str(video), kind="file", realtime=realtime), "file")
        self.loops = loops

    def read(self):
        frame = super().read()
        while frame is None and self.loops > 1:
            self.loops -= 1
            self.close()
            self.open()
            frame = super().read()
        return frame


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver, binary = shutil.which("chromedriver"), shutil.which("chromium")
    if not driver or not binary:
        raise SystemExit("error: needs chromium and chromium-driver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(arg)
    # Chromium leaves its singleton socket folder in TMPDIR even after quit(): give it a folder of its own, removed
    # with the driver
    scratch = tempfile.mkdtemp(prefix="shelfid-chromium-")
    browser = webdriver.Chrome(service=Service(driver, env=os.environ | {"TMPDIR": scratch}), options=options)
    weakref.finalize(browser, shutil.rmtree, scratch, True)
    return browser


def wait_for_page(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # the page answers once the models are warm
        try:
            if requests.get(url + "/api/status", timeout=1).json().get("camera") == "ok":
                return
        except (requests.ConnectionError, ValueError):
            pass
        time.sleep(0.1)
    raise SystemExit("error: the page did not come up")


def one_run(data: Path, loops: int, watch: bool, screenshot: Path | None) -> dict:
    port = free_port()
    config = Config.model_validate({"device": {"id": "bench", "data_dir": str(data)}, "mqtt": {"enabled": False},
                                    "camera": {"source": str(VIDEO), "realtime": False},  # lossless: every frame, as fast as it goes
                                    "web": {"enabled": True, "port": port}})
    result: dict = {}
    daemon = threading.Thread(target=lambda: result.update(run(config, source=LoopingVideo(VIDEO, loops, realtime=False))))
    driver = chromium() if watch else None  # started first: the browser's own start-up is not the daemon's cost
    daemon.start()
    url = f"http://127.0.0.1:{port}"
    wait_for_page(url)
    if driver is not None:
        driver.get(url + "/")
        shot_at = time.monotonic() + 6
        while daemon.is_alive():
            if screenshot and time.monotonic() > shot_at:
                driver.save_screenshot(str(screenshot))
                screenshot = None
            daemon.join(0.5)
        loads = driver.execute_script("return window.liveLoads")
        driver.quit()
        result["live_view_frames"] = loads
    daemon.join()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=3, help="times the sample video is played per run")
    parser.add_argument("--screenshot", type=Path, help="save a screenshot of the page (PNG) here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        sample_catalog(Config(), data / "catalogs" / "v1", "shelf")
        os.symlink("v1", data / "catalogs" / "current")
        closed = one_run(data, args.loops, False, None)
        opened = one_run(data, args.loops, True, args.screenshot)
    print("| page | frames | processed FPS | identified | live-view frames shown |")
    print("|---|---|---|---|---|")
    print(f"| closed | {closed['frames']} | {closed['fps']} | {closed['identified']} | – |")
    print(f"| open (headless Chromium) | {opened['frames']} | {opened['fps']} | {opened['identified']} | {opened['live_view_frames']} |")
    print(f"page open: {opened['fps'] / closed['fps']:.2f}× the FPS of page closed")
    if args.screenshot:
        print(f"screenshot: {args.screenshot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

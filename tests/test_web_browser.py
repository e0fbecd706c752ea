"""The installer's page in real headless Chromium against the daemon running on the sample video."""

from __future__ import annotations

import os
import threading

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from edge.core.assembly import Models
from edge.core.catalog_build import build_catalog
from edge.core.config import Config
from edge.daemon.run import run
from tests.conftest import REPO
from tools.bench_web import VIDEO, LoopingVideo, chromium, wait_for_page
from tools.mqtt_harness import free_port

FIRST_IDENTIFIED = """
const li = document.querySelector('#events li.identified');
if (!li) return null;
return {text: li.textContent, widths: [...li.querySelectorAll('img')].map((i) => (i.complete ? i.naturalWidth : 0))};
"""


@pytest.fixture
def daemon_with_page(tmp_path, sample_catalog_dir):
    data = tmp_path / "data"
    (data / "catalogs").mkdir(parents=True)
    os.symlink(sample_catalog_dir, data / "catalogs" / "current")
    port = free_port()
    config = Config.model_validate({"device": {"id": "aisle-7", "data_dir": str(data)}, "mqtt": {"enabled": False},
                                    "web": {"enabled": True, "port": port, "snapshot_fps": 4}})
    stop = threading.Event()
    daemon = threading.Thread(target=run, args=(config,), kwargs={"stop": stop, "source": LoopingVideo(VIDEO, 4)})
    daemon.start()
    url = f"http://127.0.0.1:{port}"
    wait_for_page(url)
    yield url
    stop.set()
    daemon.join(60)


def test_the_page_shows_the_live_view_an_identification_and_the_catalog(daemon_with_page, tmp_path):
    driver = chromium()
    try:
        driver.get(daemon_with_page + "/")
        wait = WebDriverWait(driver, 60, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,))
        wait.until(lambda d: (d.execute_script("return window.liveLoads") or 0) >= 3)  # the live image keeps updating
        # the list is re-rendered every 2 s: read the first identified item in one step, once its thumbnails loaded
        item = wait.until(lambda d: (r := d.execute_script(FIRST_IDENTIFIED)) and len(r["widths"]) == 2 and min(r["widths"]) > 0 and r)
        assert "Chá Mate" in item["text"]
        wait.until(lambda d: "shelf v1" in d.find_element(By.ID, "catalog-version").text)
        assert "aisle-7" in driver.find_element(By.ID, "device").text
        driver.save_screenshot(str(tmp_path / "page.png"))
        assert (tmp_path / "page.png").stat().st_size > 10_000
    finally:
        driver.quit()


class UnpluggableCamera:
    """A live camera (the hardware we cannot have here) that can be unplugged and plugged back."""

    name, live = "usb-cam", True

    def __init__(self, frame):
        self.frame = frame
        self.plugged = threading.Event()
        self.plugged.set()

    def open(self):
        from edge.daemon.camera import CameraError

        if not self.plugged.is_set():
            raise CameraError("camera usb-cam: cannot open /dev/video0 (unplugged)")

    def read(self):
        from edge.daemon.camera import CameraError

        if not self.plugged.wait(0.1):
            raise CameraError("camera usb-cam: read failed (unplugged)")
        self.plugged.wait(1 / 15)  # stays set: just the frame interval
        return self.frame

    def close(self):
        pass


def test_the_page_says_when_the_camera_is_lost_and_follows_a_catalog_switch(tmp_path, shelf_frames):
    import cv2

    data = tmp_path / "data"
    models = Models.open(Config())
    detector, embedder, verifier = models.detector, models.embedder, models.verifier
    for version in (1, 2):
        build_catalog(REPO / "samples" / "shelf-catalog", data / "catalogs" / f"v{version}", embedder, verifier, detector, "shelf",
                      version=version)
    os.symlink("v1", data / "catalogs" / "current")
    port = free_port()
    config = Config.model_validate({"device": {"id": "aisle-8", "data_dir": str(data), "catalog_check_s": 0.2},
                                    "camera": {"reconnect_min_s": 0.1, "reconnect_max_s": 0.2}, "mqtt": {"enabled": False},
                                    "web": {"enabled": True, "port": port}})
    camera = UnpluggableCamera(cv2.resize(shelf_frames[1], (640, 360)))
    stop = threading.Event()
    daemon = threading.Thread(target=run, args=(config,), kwargs={"stop": stop, "source": camera})
    daemon.start()
    url = f"http://127.0.0.1:{port}"
    wait_for_page(url)
    driver = chromium()
    try:
        driver.get(url + "/")
        wait = WebDriverWait(driver, 60, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,))
        wait.until(lambda d: (d.execute_script("return window.liveLoads") or 0) >= 2)
        camera.plugged.clear()
        overlay = driver.find_element(By.ID, "overlay")
        wait.until(lambda d: overlay.is_displayed() and "camera lost" in overlay.text)
        assert "lost" in driver.find_element(By.ID, "health").text
        (data / "catalogs" / "next").symlink_to("v2")
        os.replace(data / "catalogs" / "next", data / "catalogs" / "current")  # as the sync agent switches
        wait.until(lambda d: "shelf v2" in d.find_element(By.ID, "catalog-version").text)
        camera.plugged.set()
        wait.until(lambda d: not overlay.is_displayed())
        loads = driver.execute_script("return window.liveLoads")
        wait.until(lambda d: d.execute_script("return window.liveLoads") > loads)  # the live view moves again
    finally:
        driver.quit()
        stop.set()
        daemon.join(60)

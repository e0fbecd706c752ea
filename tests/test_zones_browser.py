"""Zones drawn on the installer's page in real headless Chromium, saved into the daemon's config file, applied at once.

The daemon runs with the page on a still camera looking at a real shelf frame; the test draws a zone around the two
Chá Mate Natural bottles by clicking its corners on the still, gives it a planogram, saves, and then reads the config
file (valid, comments kept, a backup) and the zone's state on the page (two facings).
"""

from __future__ import annotations

import os
import threading

import pytest
from selenium.common.exceptions import ElementNotInteractableException, StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from edge.core.config_file import load_config
from edge.daemon.run import run
from tests.test_zones_e2e import ZONE, StillCamera, scenes
from tools.bench_web import chromium, wait_for_page
from tools.mqtt_harness import free_port

NATURAL_STATE = """
const z = document.querySelector('.zone-state[data-zone="drinks"]');
if (!z) return null;
const li = [...z.querySelectorAll('li')].find((l) => l.textContent.includes('Chá Mate Natural'));
return li ? li.querySelector('.facings').textContent : null;
"""


@pytest.fixture
def daemon_with_page(tmp_path, sample_catalog_dir):
    port = free_port()
    path = tmp_path / "config.yaml"
    path.write_text(f"# aisle 9: the drinks shelf\ndevice:\n  id: aisle-9\n  data_dir: {tmp_path / 'data'}\nmqtt:\n  enabled: false\n"
                    f"tracker:\n  recheck_s: 2\nzones:\n  present_after_s: 1\n  gone_after_s: 3\n  stationary_s: 0.5\n"
                    f"web:\n  enabled: true\n  port: {port}\n  snapshot_fps: 4\n")
    original = path.read_text()
    stop = threading.Event()
    daemon = threading.Thread(target=run, args=(load_config(path), sample_catalog_dir),
                              kwargs={"stop": stop, "source": StillCamera(scenes()), "config_path": path})
    daemon.start()
    url = f"http://127.0.0.1:{port}"
    wait_for_page(url)
    yield url, path, original
    stop.set()
    daemon.join(60)


def test_a_zone_drawn_on_the_page_is_saved_valid_and_shows_its_products(daemon_with_page, tmp_path):
    url, path, original = daemon_with_page
    driver = chromium()
    driver.set_window_size(1280, 2400)  # the whole page in view: the list above the zones grows while the test clicks
    try:
        driver.get(url + "/")
        wait = WebDriverWait(driver, 90, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,))
        wait.until(lambda d: d.execute_script("return document.getElementById('zone-still').naturalWidth > 0 && "
                                              "document.getElementById('zone-canvas').width > 0 && window.zonesLoaded > 0"))
        canvas = driver.find_element(By.ID, "zone-canvas")
        driver.find_element(By.ID, "zone-name").send_keys("drinks")
        driver.find_element(By.ID, "zone-new").click()
        w, h = canvas.size["width"], canvas.size["height"]
        for x, y in ZONE:  # Selenium 4 offsets are from the element's centre
            ActionChains(driver).move_to_element_with_offset(canvas, round(x * w - w / 2), round(y * h - h / 2)).click().perform()
        driver.find_element(By.ID, "zone-close").click()

        def add_expected(d) -> bool:  # the list may be drawn again under a busy machine's load: find, then act, as one step
            try:
                zone = d.find_element(By.CSS_SELECTOR, '#zone-list li[data-zone="drinks"]')
                Select(zone.find_element(By.CLASS_NAME, "zone-product")).select_by_value("cha-mate-natural")
                facings = zone.find_element(By.CLASS_NAME, "zone-facings")
                facings.clear()
                facings.send_keys("2")
                zone.find_element(By.CLASS_NAME, "zone-add").click()
                return True
            except ElementNotInteractableException:
                return False

        wait.until(add_expected)
        driver.find_element(By.ID, "zone-save").click()
        wait.until(lambda d: "saved to" in d.find_element(By.ID, "zone-message").text)

        config = load_config(path)  # the saved file is a valid config
        [(name, area)] = config.zones.areas.items()
        assert name == "drinks" and area.expected == {"cha-mate-natural": 2}
        assert all(abs(a - b) < 0.01 for corner, want in zip(area.polygon, ZONE) for a, b in zip(corner, want))
        assert path.read_text().startswith("# aisle 9: the drinks shelf\n") and (tmp_path / "config.yaml.bak").read_text() == original
        assert config.web == load_config(tmp_path / "config.yaml.bak").web  # nothing but the zones changed

        # the daemon applied the zones without a restart: the page shows the two bottles in the zone
        assert wait.until(lambda d: d.execute_script(NATURAL_STATE) == "2")
        shot = os.environ.get("SHELFID_ZONES_SCREENSHOT") or str(tmp_path / "zones.png")
        driver.execute_script("document.getElementById('zones').scrollIntoView()")
        driver.save_screenshot(shot)
    finally:
        driver.quit()

"""Learning from the shelf end to end, every part real: a catalog server (uvicorn, SQLite) publishes a catalog that
lacks Chá Mate Limão; a device syncs it and runs the daemon on the sample video with its page; in headless Chromium an
installer teaches one unknown track as a new product; the device names Limão at once (an `identified` event); the sync
agent's uploader sends the crops over HTTP; a manager accepts them and publishes; a second device syncs and names Limão
on facings and frames nobody taught; the first device drops its local copies once its catalog holds them."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import requests
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from edge.core.assembly import Models, load_identifier
from edge.core.config import Config
from edge.core.datadir import DataDir
from edge.core.field_references import ReferenceStore
from edge.daemon.run import run
from sync_agent.agent import Agent
from sync_agent.uploader import Uploader
from tests.edge.test_field_references import crops_of
from tests.sync.conftest import TOKEN
from tests.sync.test_references import AUTH, LIMAO_CROP, start_catalog_server
from tools.bench_web import VIDEO, LoopingVideo, chromium, wait_for_page
from tools.mqtt_harness import free_port

SKU = "7891234000011"  # samples/shelf-catalog/products.csv's Limão: the product id the device makes of it is the same
CARDS = "return [...document.querySelectorAll('#unknowns li')].map((li) => [Number(li.dataset.track), li.querySelector('img').src, " \
        "li.querySelectorAll('img').length]);"


def device_config(root, server_url: str, keys, web_port: int | None = None) -> Config:
    root.mkdir(parents=True)
    (root / "sync-token").write_text(TOKEN)
    return Config.model_validate({
        "device": {"id": root.name, "data_dir": str(root / "data")}, "mqtt": {"enabled": False},
        "sync": {"server_url": server_url, "catalog_id": "shelf", "public_key_file": str(keys[1]), "token_file": str(root / "sync-token")},
        "web": {"enabled": web_port is not None, "port": web_port or 8090, "snapshot_fps": 4}})


def limao_likeness(models: Models):
    """How many SIFT inliers a crop shares with a Limão crop of the video (tests/data/queries): the test's eyes, to pick
    the card an installer would recognise as Limão."""
    reference = models.verifier.features(cv2.imread(str(LIMAO_CROP)))

    def inliers(url: str) -> int:
        answer = requests.get(url, timeout=5)
        if answer.status_code != 200:  # the track was named or went out of the list meanwhile
            return 0
        crop = cv2.imdecode(np.frombuffer(answer.content, np.uint8), cv2.IMREAD_COLOR)
        return models.verifier.match(models.verifier.features(crop), reference).inliers

    return inliers


def test_a_crop_taught_on_the_page_is_named_at_once_reviewed_published_and_named_by_a_second_device(tmp_path, keys):
    server = start_catalog_server(tmp_path / "server", keys, products=("cha-mate-natural",))
    stop, daemon = threading.Event(), None
    try:
        one = device_config(tmp_path / "aisle-1", server.url, keys, web_port=free_port())
        assert Agent(one).sync_once().version == 1
        named_limao, events = threading.Event(), []

        def on_event(event: dict) -> None:
            events.append(event)
            if event["type"] == "identified" and event["product"]["id"] == SKU:
                named_limao.set()

        daemon = threading.Thread(target=run, args=(one,), kwargs={"stop": stop, "source": LoopingVideo(VIDEO, 50), "on_event": on_event})
        daemon.start()
        url = f"http://127.0.0.1:{one.web.port}"
        wait_for_page(url)
        likeness = limao_likeness(Models.open(Config()))
        driver = chromium()
        try:
            driver.get(url + "/")
            wait = WebDriverWait(driver, 120, poll_frequency=0.5, ignored_exceptions=(StaleElementReferenceException,))
            read: dict[tuple[int, int], int] = {}  # (track, crops) -> inliers with the Limão crop: each card read once, not every poll

            def open_clearest_limao_card(d):
                """Every card on the page with two crops or more that shows Limão clearly (30 inliers: a lesson from a card
                at 15 once named no later Limão); the clearest one's new-product form opened in the same step (the list is
                re-rendered every 2 s and drops the tracks seen longest ago: a card chosen in one step may be gone by the
                next). Under a busy suite the eight newest cards once held no such card for 120 s: all are read now."""
                cards = {track: (src, crops) for track, src, crops in d.execute_script(CARDS) if crops >= 2}
                for track, (src, crops) in cards.items():
                    if (track, crops) not in read:
                        read[track, crops] = likeness(src)
                clear = [(read[track, crops], track) for track, (_, crops) in cards.items() if read[track, crops] >= 30]
                if not clear:
                    return False
                track = max(clear)[1]
                card = d.find_element(By.CSS_SELECTOR, f'#unknowns li[data-track="{track}"]')
                assert not card.find_element(By.CSS_SELECTOR, "input.name").is_displayed()  # the new-product form opens on demand
                why = card.find_element(By.CSS_SELECTOR, "div.meta").text  # why the device did not name it, in words
                assert any(words in why for words in ("too small to verify", "matches no catalog product", "too little of the pack",
                                                      "colours differ")), why
                card.find_element(By.CSS_SELECTOR, "button.new").click()
                return track, card

            track, card = WebDriverWait(driver, 240, poll_frequency=0.5, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)
                                        ).until(open_clearest_limao_card)
            assert not named_limao.is_set() and all(e.get("product", {}) is None or e["product"]["id"] != SKU for e in events)
            name = card.find_element(By.CSS_SELECTOR, "input.name")
            assert driver.switch_to.active_element == name  # the form takes the keyboard at once
            name.send_keys("Chá Mate Limão Orgânico 1.25 L", Keys.TAB, SKU, Keys.ENTER)
            outcome = wait.until(lambda d: d.find_element(By.ID, "taught").text or card.find_element(By.CSS_SELECTOR, ".msg").text)
            assert "taught as Chá Mate Limão" in outcome, outcome
            driver.save_screenshot(str(tmp_path / "taught.png"))
        finally:
            driver.quit()
        assert named_limao.wait(120), f"the device did not name Limão after teaching: {[e.get('product') for e in events][-10:]}"
        assert DataDir(one.device.data_dir).sync_trigger.is_file()  # the sync agent is woken to upload

        taught = [r.reference_id for r in ReferenceStore(DataDir(one.device.data_dir).references).all()]
        assert len(taught) >= 1 and sorted(Uploader(one).upload_round().uploaded) == sorted(taught)
        queue = requests.get(f"{server.url}/api/v1/catalogs/shelf/references", headers=AUTH, timeout=10).json()
        assert sorted(r["reference_id"] for r in queue) == sorted(taught)
        assert all(r["state"] == "pending" and r["device_id"] == "aisle-1" and r["track_id"] == track for r in queue), queue
        for reference_id in taught:
            requests.post(f"{server.url}/api/v1/catalogs/shelf/references/{reference_id}/accept", json={}, headers=AUTH,
                          timeout=60).raise_for_status()
        requests.post(f"{server.url}/api/v1/catalogs/shelf/publish", headers=AUTH, timeout=120).raise_for_status()

        two = device_config(tmp_path / "aisle-2", server.url, keys)
        assert Agent(two).sync_once().version == 2
        identifier = load_identifier(two, DataDir(two.device.data_dir).current)
        assert SKU in [p.product_id for p in identifier.products]
        store = ReferenceStore(DataDir(one.device.data_dir).references)
        taught_crops = [cv2.imdecode(np.frombuffer(store.crop(r), np.uint8), cv2.IMREAD_COLOR) for r in taught]
        assert SKU in [i.product.product_id for i in identifier.identify_crops(taught_crops) if i.product]  # what the fleet learned
        later = crops_of(60, "cha-mate-limao") + crops_of(120, "cha-mate-limao")  # four facings, two frames
        named = [i.product.product_id if i.product else None for i in identifier.identify_crops(later)]
        assert "cha-mate-natural" not in named, named  # how many of them it names depends on the crops taught (8 of 8 seen)

        assert Agent(one).sync_once().version == 2
        Uploader(one).upload_round()
        assert ReferenceStore(DataDir(one.device.data_dir).references).all() == []  # its catalog holds them now
    finally:
        stop.set()
        if daemon is not None:
            daemon.join(60)
        server.stop()

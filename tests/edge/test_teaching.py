"""Teaching through the installer page's HTTP API (a real WebServer, the daemon's Teaching, real crops and models): what
the page lists, searching the catalog, a confirmation that writes field references and takes them in, and every bad
request refused with a clear answer and nothing written."""

from __future__ import annotations

import threading

import pytest
import requests

from edge.core.assembly import identifier_for
from edge.core.config import WebConfig
from edge.core.field_references import ReferenceStore
from edge.core.identify import Identification
from edge.daemon.teaching import Teaching, new_product_id
from edge.daemon.unknowns import RecentUnknowns
from edge.web.live import LiveState
from edge.web.metrics import Metrics
from edge.web.server import WebServer
from tests.edge.test_field_references import crops_of, natural_only  # noqa: F401 - the module fixture
from tools.mqtt_harness import free_port


@pytest.fixture
def page(natural_only, tmp_path):  # noqa: F811
    config, models, catalog = natural_only
    config = config.model_copy(update={"device": config.device.model_copy(update={"data_dir": tmp_path, "id": "aisle-7"})})
    identifier = identifier_for(config, catalog, models)
    unknowns = RecentUnknowns()
    limao = crops_of(0, "cha-mate-limao")
    guess = identifier.identify_crops(limao[:1])[0]
    assert guess.status == "unknown"
    for k, crop in enumerate(limao):  # track 11 seen four times, track 12 once
        unknowns.observe(11, guess, crop, float(k))
    unknowns.observe(12, guess, limao[1], 5.0)
    taken_in, woken = threading.Event(), []
    teaching = Teaching(config, unknowns, lambda: identifier, taken_in.set, lambda: woken.append(1))
    server = WebServer(WebConfig(enabled=True, port=free_port()), LiveState(), Metrics(LiveState()), teacher=teaching).start()
    yield server.url, teaching, taken_in, woken
    server.stop()


def post(url: str, track: int, body, **headers) -> requests.Response:
    kw = {"json": body} if not isinstance(body, bytes) else {"data": body, "headers": {"Content-Type": "application/json"}}
    if headers:
        kw["headers"] = kw.get("headers", {}) | {"Content-Type": "application/json"} | headers
    return requests.post(f"{url}/api/unknowns/{track}", timeout=10, **kw)


def test_the_page_lists_unknown_tracks_with_their_sharpest_crops_and_searches_the_catalog(page):
    url, *_ = page
    listed = requests.get(url + "/api/unknowns", timeout=5).json()
    assert [u["track_id"] for u in listed] == [12, 11]  # newest first
    eleven = listed[1]
    assert eleven["crops"] == 3 and len(eleven["crop_urls"]) == 3 and eleven["guess"]["id"] == "cha-mate-natural"
    image = requests.get(url + eleven["crop_urls"][0], timeout=5)
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/jpeg" and image.content[:2] == b"\xff\xd8"
    assert requests.get(url + "/unknown/11/7.jpg", timeout=5).status_code == 404
    found = requests.get(url + "/api/products", params={"q": "CHA mate"}, timeout=5).json()  # case and accents ignored
    assert found == [{"id": "cha-mate-natural", "sku": "7891234000028", "name": "Chá Mate Natural Orgânico 1.25 L"}]
    assert requests.get(url + "/api/products", params={"q": "1234000028"}, timeout=5).json() == found  # by SKU
    assert requests.get(url + "/api/products", params={"q": "limão"}, timeout=5).json() == []


def test_a_new_product_taught_is_kept_on_disk_taken_in_and_the_upload_woken(page, tmp_path):
    url, teaching, taken_in, woken = page
    answer = post(url, 11, {"action": "new", "name": "Chá Mate Limão", "sku": "7894900 011517", "crops": [0, 2], "by": "Ana"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["product"] == {"id": "7894900-011517", "sku": "7894900 011517", "name": "Chá Mate Limão"} and len(body["references"]) == 2
    stored = ReferenceStore(tmp_path / "references").all()
    assert {r.reference_id for r in stored} == set(body["references"])
    assert all(r.new_product and r.confirmed_by == "Ana" and r.track_id == 11 and r.device_id == "aisle-7" and r.state == "pending"
               and r.guess == "cha-mate-natural" for r in stored)
    assert taken_in.is_set() and woken == [1]
    assert [u["track_id"] for u in requests.get(url + "/api/unknowns", timeout=5).json()] == [12]  # taught: not offered again
    assert post(url, 11, {"action": "not_a_product"}).status_code == 404


def test_a_look_alike_filed_as_its_sibling_is_disputed_before_the_device_uses_it_unless_overridden(page, tmp_path):
    url, teaching, taken_in, woken = page
    answer = post(url, 12, {"action": "product", "product_id": "cha-mate-natural"})  # track 12 is a Limão
    assert answer.status_code == 409 and "in other colours" in answer.json()["error"] and "override" in answer.json()["error"]
    assert not (tmp_path / "references").exists() and not taken_in.is_set()
    assert 12 in [u["track_id"] for u in requests.get(url + "/api/unknowns", timeout=5).json()]  # offered again
    answer = post(url, 12, {"action": "product", "product_id": "cha-mate-natural", "override": True})
    assert answer.status_code == 200 and answer.json()["product"]["id"] == "cha-mate-natural"
    assert [r.new_product for r in ReferenceStore(tmp_path / "references").all()] == [False]
    assert post(url, 11, {"action": "not_a_product"}).json()["references"] == []
    assert requests.get(url + "/api/unknowns", timeout=5).json() == [] and len(ReferenceStore(tmp_path / "references").all()) == 1


@pytest.mark.parametrize("body,headers,status,says", [
    (b"{not json", {}, 400, "not JSON"),
    (b"[1, 2]", {}, 400, "JSON object"),
    ({"action": "steal"}, {}, 422, "action must be one of"),
    ({"action": "product"}, {}, 422, "needs product_id"),
    ({"action": "new", "name": "X"}, {}, 422, "name and sku"),
    ({"action": "product", "product_id": "cha-mate-natural", "crops": [0, "1"]}, {}, 422, "crops must be"),
    ({"action": "new", "name": "Evil\u202eName", "sku": "1"}, {}, 422, "control or direction"),
    ({"action": "product", "product_id": "cha-mate-natural", "admin": True}, {}, 422, "unknown fields"),
    ({"action": "product", "product_id": "no-such"}, {}, 404, "no product 'no-such'"),
    ({"action": "product", "product_id": "cha-mate-natural", "crops": [9]}, {}, 422, "no crops"),
    ({"action": "product", "product_id": "cha-mate-natural"}, {"Origin": "http://evil.example"}, 403, "cross-site"),
    (b"action=product&product_id=cha-mate-natural", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"),
    (b"{" + b" " * 5000 + b"}", {}, 413, "at most 4,096"),
])
def test_a_bad_lesson_is_refused_clearly_and_writes_nothing(page, tmp_path, body, headers, status, says):
    url, teaching, taken_in, woken = page
    answer = post(url, 11, body, **headers)
    assert answer.status_code == status and says in answer.json()["error"], answer.text
    assert not (tmp_path / "references").exists() or ReferenceStore(tmp_path / "references").all() == []
    assert not taken_in.is_set() and woken == []
    if status != 422 or says != "no crops":  # a refused lesson leaves the track offered (one naming crops it lacks took it)
        assert 11 in [u["track_id"] for u in requests.get(url + "/api/unknowns", timeout=5).json()]


def test_a_new_product_may_not_reuse_a_catalog_sku_and_no_route_but_teaching_takes_post(page, natural_only):  # noqa: F811
    url, *_ = page
    sku = natural_only[2].products[0].sku
    answer = post(url, 11, {"action": "new", "name": "Another", "sku": sku})
    assert answer.status_code == 409 and "choose that product instead" in answer.json()["error"]
    assert requests.post(url + "/api/events", json={}, timeout=5).status_code == 405
    assert requests.get(url + "/api/unknowns/11", timeout=5).headers["Allow"] == "POST"
    assert new_product_id("  Çà va / 12 ") == "ca-va-12"


def test_observing_keeps_the_sharpest_crops_and_forgets_a_track_once_named(natural_only):  # noqa: F811
    _, _, catalog = natural_only
    unknowns = RecentUnknowns(tracks=2, crops_per_track=2)
    crop = crops_of(0, "cha-mate-limao")[0]
    blurred = __import__("cv2").GaussianBlur(crop, (0, 0), 4)
    unknown = Identification.unknown_empty()
    for k, c in enumerate([blurred, crop, blurred]):
        unknowns.observe(1, unknown, c, float(k))
    assert unknowns.recent()[0]["crops"] == 2 and unknowns._tracks[1].crops[0][0] > unknowns._tracks[1].crops[1][0]
    unknowns.observe(2, unknown, crop, 3.0)
    unknowns.observe(3, unknown, crop, 4.0)  # over capacity: the track seen longest ago goes
    assert [u["track_id"] for u in unknowns.recent()] == [3, 2]
    named = Identification(status="identified", product=catalog.products[0], guess=None, similarity=0.9, inliers=50,
                           inlier_ratio=0.5, spread=0.5, verified=1)
    unknowns.observe(3, named, crop, 5.0)
    assert [u["track_id"] for u in unknowns.recent()] == [2]
    unknowns.observe(4, unknown, blurred, 6.0, named=True)  # a confirmed product re-checked on a blurred frame: no lesson
    unknowns.observe(2, unknown, blurred, 6.0, named=True)
    assert unknowns.recent() == []

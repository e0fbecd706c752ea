"""Saving zones from the page over real HTTP: a good save, and every bad request refused with the file untouched."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import requests

from edge.core.catalog import Product
from edge.core.config import WebConfig, ZonesConfig
from edge.core.config_file import load_config
from edge.web.live import LiveState
from edge.web.metrics import Metrics
from edge.web.server import WebServer
from edge.web.zone_desk import ZoneDesk
from tools.mqtt_harness import free_port

CONFIG = "# aisle 7, installed by Ana\ndevice:\n  id: aisle-7\nzones:\n  gone_after_s: 20\n"
SQUARE = [[0.1, 0.1], [0.6, 0.1], [0.6, 0.9], [0.1, 0.9]]
CATALOG = SimpleNamespace(catalog_id="shelf", version=2, products=[Product("cha-mate-natural", "222", "Chá Mate Natural")])
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def page(tmp_path, monkeypatch):
    monkeypatch.delenv("SHELFID_WEB_TOKEN", raising=False)
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    live = LiveState()
    server = WebServer(WebConfig(enabled=True, port=free_port()), live, Metrics(live))
    server.zones = ZoneDesk(path, load_config(path).zones)
    server.zones.show({}, CATALOG)  # as the frame loop does
    server.start()
    yield server, path
    server.stop()


def post(server, body, headers=JSON) -> requests.Response:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(server.url + "/api/zones", data=data, headers=headers, timeout=5)


def test_zones_saved_from_the_page_land_in_the_file_and_apply_once(page):
    server, path = page
    answer = post(server, {"areas": {"drinks": {"polygon": SQUARE, "expected": {"cha-mate-natural": 2}}}})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"saved": str(path), "backup": f"{path}.bak", "areas": ["drinks"]}
    config = load_config(path)
    assert config.zones.areas["drinks"].expected == {"cha-mate-natural": 2} and config.zones.gone_after_s == 20
    assert path.read_text().startswith("# aisle 7, installed by Ana\n") and (path.parent / "config.yaml.bak").read_text() == CONFIG
    saved = server.zones.take_saved()
    assert saved == config.zones and server.zones.take_saved() is None  # the frame loop picks it up once
    view = requests.get(server.url + "/api/zones", timeout=5).json()
    assert view["areas"]["drinks"]["polygon"] == SQUARE and view["states"] == {"drinks": None} and view["editable"]
    assert view["products"] == [{"id": "cha-mate-natural", "name": "Chá Mate Natural"}]


@pytest.mark.parametrize("body,headers,status,says", [
    ({"areas": {"drinks": {"polygon": [[0, 0], [1, 1], [1, 0], [0, 1]]}}}, JSON, 400, "crosses itself"),
    ({"areas": {"drinks": {"polygon": [[0, 0], [1, 1]]}}}, JSON, 400, "at least 3 items"),
    ({"areas": {"drinks": {"polygon": SQUARE, "expected": {"cola": 1}}}}, JSON, 400, "cola: unknown product"),
    ({"areas": {"a/b": {"polygon": SQUARE}}}, JSON, 400, "zone name 'a/b' is not allowed"),
    ({"areas": {"drinks": {"polygon": SQUARE}}, "gone_after_s": 1}, JSON, 400, 'expected a JSON object {"areas"'),
    (b"{\"areas\": ", JSON, 400, "not JSON"),
    (b"[" * 10_000, JSON, 400, "not JSON"),
    ({"areas": {}}, {"Content-Type": "text/plain"}, 415, "application/json"),
    ({"areas": {}}, JSON | {"Origin": "http://evil.example"}, 403, "cross-site"),
    ({"areas": {}}, JSON | {"Sec-Fetch-Site": "cross-site"}, 403, "cross-site"),
    (b"{}" * 40_000, JSON, 413, "at most 65,536"),
])
def test_a_bad_save_is_refused_with_a_clear_error_and_the_file_untouched(page, body, headers, status, says):
    server, path = page
    answer = post(server, body, headers)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"] + " ".join(answer.json().get("problems", []))
    assert path.read_text() == CONFIG and not (path.parent / "config.yaml.bak").exists()
    assert server.zones.take_saved() is None


def test_other_paths_stay_read_only_and_a_page_without_a_config_file_cannot_save(tmp_path, monkeypatch):
    monkeypatch.delenv("SHELFID_WEB_TOKEN", raising=False)
    live = LiveState()
    server = WebServer(WebConfig(enabled=True, port=free_port()), live, Metrics(live))
    server.zones = ZoneDesk(None, ZonesConfig())
    server.start()
    try:
        refused = requests.post(server.url + "/api/status", json={}, timeout=5)
        assert refused.status_code == 405 and refused.headers["Allow"] == "GET, HEAD"
        assert requests.put(server.url + "/api/zones", json={}, timeout=5).headers["Allow"] == "GET, HEAD, POST"
        answer = post(server, {"areas": {}})
        assert answer.status_code == 409 and "started without a config file" in answer.json()["error"]
        assert requests.get(server.url + "/api/zones", timeout=5).json()["editable"] is False
        script = requests.get(server.url + "/zones.js", timeout=5)
        assert script.status_code == 200 and script.headers["Content-Type"].startswith("text/javascript")
    finally:
        server.stop()

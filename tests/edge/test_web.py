"""The installer's page server on a real socket: routes, auth, bad requests, /metrics and /api/status contracts."""

from __future__ import annotations

import http.client
import json

import jsonschema
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from edge.core.catalog import load_catalog
from edge.core.config import WebConfig
from edge.core.errors import ShelfIDError
from edge.reporting.events import make_event
from edge.web.live import LiveState
from edge.web.metrics import Metrics
from edge.web.server import WebServer
from tests.conftest import REPO
from tools.mqtt_harness import free_port

STATUS = {"device": "shelf-1", "camera": "ok", "camera_name": "cam0", "fps": 14.9, "input_fps": 15.0, "frames": 120, "dropped_frames": 2,
          "camera_reconnects": 0, "tracks": 7, "identified": 3, "unknown": 1, "stage_ms": {"detect": {"p50": 30.0, "p95": 41.0}},
          "identify_queue": 1, "catalog_id": "shelf", "catalog_version": 4, "catalog_switches": 1, "rss_mb": 320.5, "uptime_s": 42,
          "disk_free_gb": 12.3, "snapshot_fps": 2.0, "mqtt_connected": True, "outbox_size": 0, "outbox_dropped": 0,
          "sync": {"active_version": 4, "last_success": "2026-11-25T10:00:00+00:00", "last_error": None, "last_attempt": None},
          "sync_age_s": 60}


@pytest.fixture(scope="module")
def catalog(sample_catalog_dir):
    return load_catalog(sample_catalog_dir)


def serve(live: LiveState, token: str | None = None, host: str = "127.0.0.1", monkeypatch=None) -> WebServer:
    if token is not None:
        monkeypatch.setenv("SHELFID_WEB_TOKEN", token)
    config = WebConfig(enabled=True, host=host, port=free_port())
    return WebServer(config, live, Metrics(live)).start()


@pytest.fixture
def page(catalog, shelf_frames, monkeypatch):
    monkeypatch.delenv("SHELFID_WEB_TOKEN", raising=False)
    live = LiveState(snapshot_fps=5, recent=5)
    live.set_status(STATUS)
    event = make_event(kind="identified", seq=1, device="shelf-1", camera="cam0", ts=1.0, first_seen=0.5, track_id=3,
                       product=catalog.products[0], guess=None, similarity=0.9, inliers=120, inlier_ratio=0.8, confidence=1.0,
                       bbox_norm=(0.1, 0.1, 0.3, 0.6), catalog_id="shelf", catalog_version=4)
    live.add_events([event], shelf_frames[1], catalog)
    server = serve(live)
    yield server, live, event
    server.stop()


def test_the_page_and_its_data(page, shelf_frames):
    server, live, event = page
    url = server.url
    home = requests.get(url + "/", timeout=5)
    assert home.status_code == 200 and "Recent identifications" in home.text and "text/html" in home.headers["Content-Type"]
    assert requests.get(url + "/snapshot.jpg", timeout=5).status_code == 503  # no frame encoded yet
    assert live.wants_frame()  # the request above made somebody a watcher
    live.set_frame(shelf_frames[0], [((10, 10, 200, 300), "Chá Mate", True)])
    snap = requests.get(url + "/snapshot.jpg", timeout=5)
    assert snap.status_code == 200 and snap.content[:2] == b"\xff\xd8"
    [listed] = requests.get(url + "/api/events?limit=5", timeout=5).json()
    assert listed["event_id"] == event["event_id"] and listed["product"]["id"] == "cha-mate-limao"
    for key in ("crop_url", "catalog_url"):
        thumb = requests.get(url + listed[key], timeout=5)
        assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
    schema = json.loads((REPO / "schemas" / "status.schema.json").read_text())
    jsonschema.validate(requests.get(url + "/api/status", timeout=5).json(), schema)


def test_metrics_parse_with_the_prometheus_parser(page):
    server, live, _ = page
    server.metrics.observe({"detect": 31.0, "verify": 140.0})
    text = requests.get(server.url + "/metrics", timeout=5).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["shelfid_fps"].samples[0].value == 14.9
    assert families["shelfid_identifications"].samples[0].value == 3
    assert families["shelfid_outbox_events"].samples[0].value == 0 and families["shelfid_sync_age_seconds"].samples[0].value == 60
    stage = families["shelfid_stage_seconds"]
    assert stage.type == "histogram"
    counts = {s.labels["stage"]: s.value for s in stage.samples if s.name.endswith("_count")}
    assert counts == {"detect": 1.0, "verify": 1.0}


@pytest.mark.parametrize("target,status", [
    ("/api/events?limit=0", 400), ("/api/events?limit=999", 400), ("/api/events?limit=abc", 400), ("/api/events?limit=-1", 400),
    ("/api/events?limit=" + "9" * 500, 400), ("/api/events?a=1&&&b", 400), ("/api/events?" + "&".join(f"k{i}=1" for i in range(20)), 400),
    ("/x" * 1500, 414), ("/etc/passwd", 404), ("/thumb/not-an-id/crop.jpg", 404),
    ("/thumb/00000000-0000-0000-0000-000000000000/crop.jpg", 404), ("/static/../../setup.py", 404),
])
def test_bad_requests_get_the_right_4xx_as_json(page, target, status):
    server, _, _ = page
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=5)
    connection.request("GET", target)
    response = connection.getresponse()
    body = response.read()
    assert response.status == status and json.loads(body)["status"] == status
    assert requests.get(server.url + "/api/status", timeout=5).status_code == 200  # and the server is still there


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_nothing_changes_state(page, method):
    server, _, _ = page
    response = requests.request(method, server.url + "/api/events", timeout=5)
    assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD"


def test_beyond_loopback_a_token_is_required_and_checked(monkeypatch):
    monkeypatch.delenv("SHELFID_WEB_TOKEN", raising=False)
    with pytest.raises(ShelfIDError, match="not loopback: set web.token_file"):
        WebServer(WebConfig(enabled=True, host="0.0.0.0", port=free_port()), LiveState(), Metrics(LiveState()))
    live = LiveState()
    live.set_status(STATUS)
    server = serve(live, token="let-me-in", host="0.0.0.0", monkeypatch=monkeypatch)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert requests.get(url + "/api/status", timeout=5).status_code == 401
        assert requests.get(url + "/api/status", headers={"Authorization": "Bearer nope"}, timeout=5).status_code == 403
        assert requests.get(url + "/metrics?token=nope", timeout=5).status_code == 403
        assert requests.get(url + "/api/status", headers={"Cookie": "shelfid_token=\"bad;;"}, timeout=5).status_code == 401  # unreadable: none
        assert requests.get(url + "/api/status", headers={"Authorization": "Bearer let-me-in"}, timeout=5).status_code == 200
        browser = requests.Session()
        first = browser.get(url + "/?token=let-me-in", timeout=5)
        [redirect] = first.history  # to the same page without the token in the address bar
        assert redirect.status_code == 303 and "HttpOnly" in redirect.headers["Set-Cookie"] and first.url == url + "/"
        assert first.status_code == 200 and "Recent identifications" in first.text
        assert browser.get(url + "/api/status", timeout=5).status_code == 200  # the cookie now carries the token
    finally:
        server.stop()

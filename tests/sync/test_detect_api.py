"""POST /api/v1/catalogs/{id}/detect over real HTTP (the catalog server under uvicorn on loopback): it answers what
`shelfid detect --json` prints for the same photo and catalog, and refuses what it must, as JSON, before doing work."""

from __future__ import annotations

import json
import logging

import jsonschema
import pytest
import requests

from edge.core.config import Config
from sync_agent.server.app import ServerSettings, create_app
from sync_agent.server.publisher import publish
from sync_agent.server.storage import LocalStorage
from sync_agent.signing import load_private_key
from tests.conftest import REPO
from tests.sync.conftest import TOKEN
from tools.http_harness import ServerThread

AUTH = {"Authorization": f"Bearer {TOKEN}"}
FRAME = REPO / "samples" / "shelf" / "frame_0150.jpg"


@pytest.fixture(scope="module")
def detect_server(tmp_path_factory, keys, sample_catalog_dir):
    """A catalog server (token on) whose storage holds samples/shelf-catalog published as catalog `shelf` v1."""
    from edge.core.catalog import load_catalog

    root = tmp_path_factory.mktemp("detect-server")
    publish(LocalStorage(root / "public"), load_catalog(sample_catalog_dir), "shelf", load_private_key(keys[0]), 1)
    server = ServerThread(create_app(ServerSettings(root=root, signing_key=keys[0], token=TOKEN, config=Config()))).start()
    yield server, root
    server.stop()


def detect(url: str, data: bytes, name: str = "frame.jpg", catalog: str = "shelf", headers: dict | None = None):
    return requests.post(f"{url}/api/v1/catalogs/{catalog}/detect", files={"image": (name, data, "image/jpeg")},
                         headers=AUTH if headers is None else headers, timeout=120)


def test_detect_answers_what_shelfid_detect_json_prints(detect_server, sample_catalog_dir, capsys, caplog):
    from edge.cli import main

    assert main(["detect", "--json", "--catalog", str(sample_catalog_dir), str(FRAME)]) == 0
    logging.getLogger().addHandler(caplog.handler)  # the CLI set the root logger's handlers as its own
    caplog.set_level(logging.INFO, logger="sync_agent.server.detect")
    expected = json.loads(capsys.readouterr().out)
    server, root = detect_server
    answer = detect(server.url, FRAME.read_bytes())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    jsonschema.validate(body, json.loads((REPO / "schemas" / "detect.schema.json").read_text()))
    assert body["detections"] == expected["detections"] and any(d["status"] == "identified" for d in body["detections"])
    assert (body["image"], body["catalog_id"], body["catalog_version"]) == ("frame.jpg", "shelf", 1)
    assert set(body["ms"]) == set(expected["ms"])
    assert detect(server.url, FRAME.read_bytes()).json()["detections"] == expected["detections"]
    assert len([r for r in caplog.records if "loaded" in r.getMessage()]) <= 1  # models and catalog opened once, then shared
    assert [p.name for p in (root / "detect" / "shelf").iterdir()] == ["v1"]  # assembled once, no staging left


def test_a_still_is_detected_at_its_own_scale_where_shelfid_detect_would_be_or_as_asked(detect_server, sample_catalog_dir, capsys):
    from edge.cli import main

    assert main(["detect", "--json", "--tiles", "--catalog", str(sample_catalog_dir), str(FRAME)]) == 0
    expected = json.loads(capsys.readouterr().out)
    server, _ = detect_server
    answer = requests.post(f"{server.url}/api/v1/catalogs/shelf/detect?tiles=true", headers=AUTH, timeout=120,
                           files={"image": ("frame.jpg", FRAME.read_bytes(), "image/jpeg")})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["tiles"] is True and body["detections"] == expected["detections"]
    whole = detect(server.url, FRAME.read_bytes()).json()
    assert whole["tiles"] is False and len(body["detections"]) > len(whole["detections"])  # a camera's frame: one pass
    # a phone-sized photo is detected in tiles unless asked not to be, as shelfid detect does it
    import cv2
    import numpy as np

    photo = np.full((1200, 2100, 3), 200, np.uint8)
    photo[420:780, 730:1370] = cv2.resize(cv2.imread(str(FRAME)), (640, 360), interpolation=cv2.INTER_AREA)
    large = cv2.imencode(".jpg", photo)[1].tobytes()
    assert detect(server.url, large).json()["tiles"] is True
    answer = requests.post(f"{server.url}/api/v1/catalogs/shelf/detect?tiles=false", headers=AUTH, timeout=120,
                           files={"image": ("photo.jpg", large, "image/jpeg")})
    assert answer.status_code == 200 and answer.json()["tiles"] is False


def test_a_server_configured_with_a_second_opinion_answers_as_shelfid_detect_does_with_it(tmp_path, keys, sample_catalog_dir, capsys):
    """verifier.second_opinion in the server's config: each box its first opinion left unknown is asked once more, as
    `shelfid detect` with that config does (a frame blurred past what SIFT matches: more boxes named)."""
    import cv2

    from edge.cli import main
    from edge.core.catalog import load_catalog
    from edge.core.config import VerifierConfig

    blurred = tmp_path / "blurred.jpg"
    cv2.imwrite(str(blurred), cv2.GaussianBlur(cv2.imread(str(FRAME)), (0, 0), 4))
    config_file = tmp_path / "second.yaml"
    config_file.write_text("verifier:\n  second_opinion: aliked-lightglue\n  device: cpu\n")
    assert main(["detect", "--json", "--catalog", str(sample_catalog_dir), "--config", str(config_file), str(blurred)]) == 0
    expected = json.loads(capsys.readouterr().out)
    assert main(["detect", "--json", "--catalog", str(sample_catalog_dir), str(blurred)]) == 0
    first = json.loads(capsys.readouterr().out)
    publish(LocalStorage(tmp_path / "public"), load_catalog(sample_catalog_dir), "shelf", load_private_key(keys[0]), 1)
    config = Config(verifier=VerifierConfig(second_opinion="aliked-lightglue", device="cpu"))
    server = ServerThread(create_app(ServerSettings(root=tmp_path, signing_key=keys[0], token=TOKEN, config=config))).start()
    try:
        for _ in range(2):  # the second asks the opinion kept from the first
            answer = detect(server.url, blurred.read_bytes())
            assert answer.status_code == 200, answer.text
            assert answer.json()["detections"] == expected["detections"]
    finally:
        server.stop()
    named = [sum(d["status"] == "identified" for d in run["detections"]) for run in (first, expected)]
    assert named[1] > named[0] and "second_opinion" in answer.json()["ms"]


def test_a_truncated_photo_is_a_json_422_and_leaves_nothing(detect_server):
    server, root = detect_server
    data = FRAME.read_bytes()
    answer = detect(server.url, data[: len(data) // 2])
    assert answer.status_code == 422 and answer.json()["status"] == 422 and "frame.jpg" in answer.json()["error"]
    assert detect(server.url, b"not an image").status_code == 415
    assert [p.name for p in (root / "detect" / "shelf").iterdir()] == ["v1"]


def test_unknown_catalogs_missing_fields_and_oversized_bodies_are_refused_as_json(detect_server):
    server, _ = detect_server
    unknown = detect(server.url, FRAME.read_bytes(), catalog="ghost")
    assert unknown.status_code == 404 and "no catalog 'ghost'" in unknown.json()["error"]
    no_field = requests.post(f"{server.url}/api/v1/catalogs/shelf/detect", files={"photo": ("x.jpg", b"x")}, headers=AUTH, timeout=10)
    assert no_field.status_code == 422 and "'image'" in no_field.json()["error"]
    too_big = requests.post(f"{server.url}/api/v1/catalogs/shelf/detect", headers=AUTH | {"Content-Type": "multipart/form-data; boundary=b"},
                            data=b"x" * ((20 << 20) + (64 << 10) + 1), timeout=30)
    assert too_big.status_code == 413 and too_big.json()["status"] == 413


@pytest.mark.parametrize("headers,status", [({}, 401), ({"Authorization": "Bearer wrong"}, 403)])
def test_detection_needs_the_token_when_the_server_has_one(detect_server, headers, status):
    server, _ = detect_server
    answer = detect(server.url, FRAME.read_bytes(), headers=headers)
    assert answer.status_code == status and answer.json()["status"] == status


# A busy server, a stalled upload and per-catalog fairness: tests/sync/test_server_attacks2.py (issue 33: the photo is now
# received before a slot is taken, so the old test of a 503 without reading the upload no longer holds).


def test_a_server_that_publishes_and_detects_opens_the_networks_once(tmp_path, keys, monkeypatch):
    """Issue 38: the publish and detect routes each opened their own detector, embedder and verifier (twice the memory)."""
    from edge.core.assembly import Models

    opened = []
    real = Models.open
    monkeypatch.setattr(Models, "open", staticmethod(lambda config: opened.append(1) or real(config)))
    server = ServerThread(create_app(ServerSettings(root=tmp_path / "server", signing_key=keys[0], token=TOKEN, config=Config()))).start()
    try:
        assert requests.post(f"{server.url}/api/v1/catalogs", json={"catalog_id": "shelf"}, headers=AUTH, timeout=10).status_code == 201
        photo = next((REPO / "samples" / "shelf-catalog" / "cha-mate-limao").glob("*.jpg"))
        put = requests.put(f"{server.url}/api/v1/catalogs/shelf/products/cha-mate-limao", headers=AUTH, timeout=60,
                           files=[("images", (photo.name, photo.read_bytes(), "image/jpeg"))], data={"name": "Chá Mate Limão"})
        assert put.status_code in (200, 201), put.text
        assert requests.post(f"{server.url}/api/v1/catalogs/shelf/publish", headers=AUTH, timeout=120).status_code == 201
        assert detect(server.url, FRAME.read_bytes()).status_code == 200
    finally:
        server.stop()
    assert len(opened) == 1

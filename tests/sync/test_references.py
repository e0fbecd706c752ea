"""Field references on a real catalog server (uvicorn on loopback, real SQLite, the real models): an upload of a real
crop is checked, kept once however often it is sent, reviewed (accept, reject, override) with an audit row for each
change, and an accepted one reaches a device in the next publish; a crop filed under the wrong product is disputed,
tokens without the scope are refused, and a malformed upload is a clear 4xx that leaves no row or file."""

from __future__ import annotations

import io
import json
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from edge.core.config import Config
from sync_agent.server.app import ServerSettings, create_app
from sync_agent.server.db import connect
from tests.conftest import REPO
from tests.sync.conftest import SAMPLE, TOKEN, device_config
from tools.http_harness import ServerThread

AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMAO_CROP = REPO / "tests" / "data" / "queries" / "cha-mate-limao.jpg"  # a shelf crop, not the catalog's photo
LEAO_CROP = REPO / "tests" / "data" / "queries" / "matte-leao.jpg"  # a product the sample catalog lacks
COCA_CROP = SAMPLE / "coca-cola-can" / "frame0300.jpg"


def reference(product_id: str, *, catalog: str = "shelf", new: bool = False, sku: str = "", name: str = "", **extra) -> dict:
    """A field reference's JSON as a device's store holds it (edge.core.field_references)."""
    return {"reference_id": uuid.uuid4().hex, "catalog_id": catalog, "product_id": product_id, "sku": sku, "name": name,
            "new_product": new, "device_id": "shelf-001", "track_id": 17,
            "confirmed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "confirmed_by": "installer",
            "guess": None, "state": "pending", "uploaded_at": None} | extra


def upload(url: str, ref: dict | str, crop: bytes, headers: dict = AUTH, catalog: str = "shelf",
           crop_type: str = "image/jpeg") -> requests.Response:
    text = ref if isinstance(ref, str) else json.dumps(ref)
    return requests.post(f"{url}/api/v1/catalogs/{catalog}/references", headers=headers, timeout=120,
                         data={"reference": text}, files={"crop": ("crop.jpg", crop, crop_type)})


def call(method: str, url: str, path: str, headers: dict = AUTH, **kw) -> requests.Response:
    return requests.request(method, f"{url}/api/v1/catalogs/shelf{path}", headers=headers, timeout=300, **kw)


def rows(root: Path, sql: str, *args) -> list[tuple]:
    db = connect(root / "catalog.db")
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.conn.close()


def jpeg(width: int, height: int, kind: str = "JPEG", quality: int = 90) -> bytes:
    out = io.BytesIO()
    pixels = np.random.default_rng(width).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(out, kind, **({"quality": quality} if kind == "JPEG" else {}))
    return out.getvalue()


def make_token(url: str, scope: str, catalog: str = "shelf") -> dict:
    answer = requests.post(f"{url}/api/v1/tokens", json={"catalog_id": catalog, "scope": scope, "name": f"{scope}-token"},
                           headers=AUTH, timeout=10)
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def start_catalog_server(root: Path, keys, products: tuple[str, ...] = ("cha-mate-limao", "cha-mate-natural", "coca-cola-can"),
                         publish: bool = True, port: int | None = None) -> ServerThread:
    """A catalog server whose catalog `shelf` holds the sample products, published once through its API."""
    server = ServerThread(create_app(ServerSettings(root=root, signing_key=keys[0], token=TOKEN, config=Config())), port).start()
    requests.post(f"{server.url}/api/v1/catalogs", json={"catalog_id": "shelf"}, headers=AUTH, timeout=10).raise_for_status()
    names = {line.split(",")[0]: line.split(",")[1:3] for line in (SAMPLE / "products.csv").read_text().splitlines()[1:]}
    for pid in products:
        sku, name = names[pid]
        files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in sorted((SAMPLE / pid).glob("*.jpg"))]
        requests.put(f"{server.url}/api/v1/catalogs/shelf/products/{pid}", headers=AUTH, files=files,
                     data={"sku": sku, "name": name}, timeout=30).raise_for_status()
    if publish:
        call("POST", server.url, "/publish").raise_for_status()
    return server


@pytest.fixture(scope="module")
def served(tmp_path_factory, keys):
    root = tmp_path_factory.mktemp("references-server")
    server = start_catalog_server(root, keys)
    yield server.url, root
    server.stop()


def test_an_upload_is_checked_kept_once_accepted_and_published_to_devices(served, keys, tmp_path):
    url, root = served
    ref = reference("cha-mate-limao", sku="7891234000011", name="Chá Mate Limão")
    first = upload(url, ref, LIMAO_CROP.read_bytes())
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["state"] == "pending" and body["reason"].startswith("identified as 'cha-mate-limao'")
    assert (body["device_id"], body["track_id"], body["confirmed_by"]) == ("shelf-001", 17, "installer")
    assert body["check"]["verified"][0]["product_id"] == "cha-mate-limao" and body["check"]["verified"][0]["named"]
    again = upload(url, ref, LIMAO_CROP.read_bytes())  # the device never heard the answer: the same id again
    assert again.status_code == 200 and again.json() == body
    assert rows(root, "SELECT count(*) FROM field_references WHERE reference_id = ?", ref["reference_id"]) == [(1,)]

    queue = call("GET", url, "/references").json()
    assert ref["reference_id"] in [r["reference_id"] for r in queue]
    assert call("GET", url, f"/references/{ref['reference_id']}/crop").content == LIMAO_CROP.read_bytes()
    accepted = call("POST", url, f"/references/{ref['reference_id']}/accept", json={"note": "looks right"})
    assert accepted.status_code == 200 and accepted.json()["state"] == "accepted", accepted.text
    assert call("POST", url, f"/references/{ref['reference_id']}/accept").json()["state"] == "accepted"  # again: no change
    assert ref["reference_id"] not in [r["reference_id"] for r in call("GET", url, "/references").json()]
    product = next(p for p in call("GET", url, "").json()["products"] if p["product_id"] == "cha-mate-limao")
    assert product["images"] == ["00.jpg", f"field-{ref['reference_id']}.jpg"]

    published = call("POST", url, "/publish")
    assert published.status_code == 201 and published.json()["shards_built"] is not None, published.text  # incremental
    from edge.core.catalog import load_catalog
    from sync_agent.agent import Agent

    agent = Agent(device_config(tmp_path, url, keys[1]))
    assert agent.sync_once().outcome == "updated"
    files = [row["file"] for row in load_catalog(agent.layout.current).images]
    assert f"cha-mate-limao/field-{ref['reference_id']}.jpg" in files  # how a device recognises its own reference
    actions = [a for (a,) in rows(root, "SELECT action FROM audit WHERE detail LIKE ?", f"{ref['reference_id']}%")]
    assert actions == ["upload_reference", "accept_reference"]


def test_a_new_product_is_created_when_its_reference_is_accepted(served):
    url, root = served
    ref = reference("matte-leao", new=True, sku="7890000000001", name="Matte Leão 1.5 L")
    answer = upload(url, ref, LEAO_CROP.read_bytes())
    assert answer.status_code == 201 and answer.json()["state"] == "pending", answer.text
    accepted = call("POST", url, f"/references/{ref['reference_id']}/accept")
    assert accepted.status_code == 200, accepted.text
    product = next(p for p in call("GET", url, "").json()["products"] if p["product_id"] == "matte-leao")
    assert (product["sku"], product["name"], product["images"]) == ("7890000000001", "Matte Leão 1.5 L",
                                                                    [f"field-{ref['reference_id']}.jpg"])
    assert (root / "work" / "shelf" / "matte-leao" / f"field-{ref['reference_id']}.jpg").read_bytes() == LEAO_CROP.read_bytes()


def test_a_crop_filed_under_the_wrong_product_is_disputed_and_accepted_only_with_an_override(served):
    url, root = served
    ref = reference("cha-mate-limao")
    answer = upload(url, ref, COCA_CROP.read_bytes())
    assert answer.status_code == 409, answer.text
    body = answer.json()
    assert body["reference"]["state"] == "disputed" and "'coca-cola-can'" in body["error"] and "'cha-mate-limao'" in body["error"]
    assert upload(url, ref, COCA_CROP.read_bytes()).json() == body  # sent again: the same answer, one row
    assert rows(root, "SELECT state FROM field_references WHERE reference_id = ?", ref["reference_id"]) == [("disputed",)]
    assert [r["state"] for r in call("GET", url, "/references?state=disputed").json()
            if r["reference_id"] == ref["reference_id"]] == ["disputed"]

    refused = call("POST", url, f"/references/{ref['reference_id']}/accept")
    assert refused.status_code == 409 and "override" in refused.json()["error"]
    accepted = call("POST", url, f"/references/{ref['reference_id']}/accept", json={"override": True, "note": "promo pack"})
    assert accepted.status_code == 200 and accepted.json()["override"] is True, accepted.text
    (detail,) = rows(root, "SELECT detail FROM audit WHERE action = 'accept_reference' AND detail LIKE ?", f"{ref['reference_id']}%")
    assert "OVERRIDE" in detail[0] and "coca-cola-can" in detail[0] and "promo pack" in detail[0]


def test_the_reference_may_come_as_a_file_part_as_curl_sends_it(served):
    url, _ = served
    ref = reference("cha-mate-limao")
    answer = requests.post(f"{url}/api/v1/catalogs/shelf/references", headers=AUTH, timeout=120,
                           files={"reference": ("reference.json", json.dumps(ref), "application/json"),
                                  "crop": ("crop.jpg", LIMAO_CROP.read_bytes(), "image/jpeg")})
    assert answer.status_code == 201 and answer.json()["reference_id"] == ref["reference_id"], answer.text


def test_a_sibling_cannot_take_a_crop_either(served):
    """Limão and Natural share their artwork: a Limão crop filed as Natural verifies against both, better against Limão."""
    answer = upload(served[0], reference("cha-mate-natural"), LIMAO_CROP.read_bytes())
    assert answer.status_code == 409 and "identified as 'cha-mate-limao'" in answer.json()["error"], answer.text


def test_a_rejected_reference_stays_rejected_with_its_reason(served):
    url, root = served
    ref = reference("coca-cola-can")
    assert upload(url, ref, COCA_CROP.read_bytes()).status_code == 201
    assert call("POST", url, f"/references/{ref['reference_id']}/reject", json={}).status_code == 422  # a reason is needed
    rejected = call("POST", url, f"/references/{ref['reference_id']}/reject", json={"reason": "blurred"})
    assert rejected.status_code == 200 and (rejected.json()["state"], rejected.json()["review_note"]) == ("rejected", "blurred")
    assert call("POST", url, f"/references/{ref['reference_id']}/accept").status_code == 409
    assert upload(url, ref, COCA_CROP.read_bytes()).json()["state"] == "rejected"  # delivered again: answered, not reopened
    assert rows(root, "SELECT count(*) FROM audit WHERE action = 'reject_reference' AND detail LIKE ?",
                f"{ref['reference_id']}%") == [(1,)]


def test_who_may_upload_and_who_may_review(served):
    url, _ = served
    read, upload_token, write = make_token(url, "read"), make_token(url, "upload"), make_token(url, "write")
    crop = LIMAO_CROP.read_bytes()
    assert upload(url, reference("cha-mate-limao"), crop, headers=read).status_code == 403
    assert upload(url, reference("cha-mate-limao"), crop, headers={}).status_code == 401
    ref = reference("cha-mate-limao")
    assert upload(url, ref, crop, headers=upload_token).status_code == 201  # a device's token may upload...
    for method, path in [("GET", "/references"), ("GET", f"/references/{ref['reference_id']}/crop"),
                         ("POST", f"/references/{ref['reference_id']}/accept"), ("POST", "/publish")]:
        assert call(method, url, path, headers=upload_token).status_code == 403, path  # ...and nothing else that changes
    assert requests.delete(f"{url}/api/v1/catalogs/shelf/products/coca-cola-can", headers=upload_token, timeout=10).status_code == 403
    assert call("POST", url, f"/references/{ref['reference_id']}/reject", headers=read, json={"reason": "x"}).status_code == 403
    rejected = call("POST", url, f"/references/{ref['reference_id']}/reject", headers=write, json={"reason": "duplicate"})
    assert rejected.status_code == 200 and rejected.json()["reviewed_by"].endswith(":write-token")
    requests.post(f"{url}/api/v1/catalogs", json={"catalog_id": "other"}, headers=AUTH, timeout=10).raise_for_status()
    other = make_token(url, "upload", catalog="other")
    assert upload(url, reference("cha-mate-limao"), crop, headers=other).status_code == 403  # its own catalog only


@pytest.mark.parametrize("case", ["bad json", "not json fields", "other catalog", "not an image", "png", "huge pixels",
                                  "huge file", "unknown product", "new without sku", "taken new id", "no crop", "tiny"])
def test_a_malformed_upload_is_a_clear_4xx_that_leaves_no_row_or_file(served, case):
    url, root = served
    crop = LIMAO_CROP.read_bytes()
    ref = reference("cha-mate-limao")
    sent = {
        "bad json": lambda: upload(url, "{not json", crop),
        "not json fields": lambda: upload(url, reference("cha-mate-limao", track_id="seventeen"), crop),
        "other catalog": lambda: upload(url, reference("cha-mate-limao", catalog="elsewhere"), crop),
        "not an image": lambda: upload(url, ref, b"just some text, not a crop"),
        "png": lambda: upload(url, ref, jpeg(100, 200, "PNG"), crop_type="image/png"),
        "huge pixels": lambda: upload(url, ref, jpeg(1920, 1080, quality=5)),  # a whole frame, not a product box
        "huge file": lambda: upload(url, ref, jpeg(1400, 1400, quality=100)),
        "unknown product": lambda: upload(url, reference("no-such-product"), crop),
        "new without sku": lambda: upload(url, reference("brand-new", new=True, name="Brand new"), crop),
        "taken new id": lambda: upload(url, reference("coca-cola-can", new=True, sku="123", name="Another"), crop),
        "no crop": lambda: requests.post(f"{url}/api/v1/catalogs/shelf/references", headers=AUTH, timeout=30,
                                         files={"reference": (None, json.dumps(ref))}),
        "tiny": lambda: upload(url, ref, jpeg(20, 20)),
    }
    before = rows(root, "SELECT count(*) FROM field_references")
    audit_before = rows(root, "SELECT count(*) FROM audit")
    answer = sent[case]()
    assert 400 <= answer.status_code < 500 and answer.status_code not in (401, 403), answer.text
    assert answer.json()["status"] == answer.status_code and answer.json()["error"]
    expected = {"not an image": 415, "png": 415, "huge pixels": 413, "huge file": 413, "unknown product": 422, "tiny": 422}
    assert answer.status_code == expected.get(case, answer.status_code), answer.text
    assert str(root) not in answer.text
    assert rows(root, "SELECT count(*) FROM field_references") == before
    assert rows(root, "SELECT count(*) FROM audit") == audit_before
    assert not [p for p in (root / "work" / "shelf").glob(".reference*") if p.name != ".references"]  # no staging left
    stored = {p.stem for p in (root / "work" / "shelf" / ".references").glob("*.jpg")}
    assert stored == {r for (r,) in rows(root, "SELECT reference_id FROM field_references")}

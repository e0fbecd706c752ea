"""Rough edges a newcomer met on the catalog side, each with the answer that now tells them what to do: renaming a
product, detecting against a catalog that does not exist, a server with no broker, and a sync after a rollback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from edge.core.config import MQTTConfig
from edge.core.errors import ShelfIDError
from sync_agent.announce import publish_announcement
from tests.conftest import REPO
from tests.sync.conftest import TOKEN, product_images
from tools.mqtt_harness import free_port

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def products_url(server, product: str = "cha-mate-limao") -> str:
    return f"{server.url}/api/v1/catalogs/drinks/products/{product}"


@pytest.fixture
def drinks(server):
    requests.post(f"{server.url}/api/v1/catalogs", json={"catalog_id": "drinks"}, headers=AUTH, timeout=10).raise_for_status()
    return server


def test_a_put_without_images_says_put_replaces_the_product_and_patch_renames_it(drinks):
    images = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in product_images("cha-mate-limao")]
    assert requests.put(products_url(drinks), files=images, data={"sku": "1", "name": "Old"}, headers=AUTH, timeout=30).status_code == 201
    renamed_by_put = requests.put(products_url(drinks), data={"sku": "2", "name": "New"}, headers=AUTH, timeout=30)
    error = renamed_by_put.json()["error"]
    assert renamed_by_put.status_code == 422 and "PUT replaces the product with the images it sends" in error and "PATCH" in error
    assert "body.images: Field required" not in error

    patched = requests.patch(products_url(drinks), json={"name": "Chá Mate Limão 1.25 L"}, headers=AUTH, timeout=10)
    assert patched.status_code == 200 and patched.json() == {"product_id": "cha-mate-limao", "sku": "1", "name": "Chá Mate Limão 1.25 L"}
    [product] = requests.get(f"{drinks.url}/api/v1/catalogs/drinks", headers=AUTH, timeout=10).json()["products"]
    assert product["name"] == "Chá Mate Limão 1.25 L" and product["sku"] == "1" and product["images"] == ["00.jpg"]  # images kept
    [latest, *_] = requests.get(f"{drinks.url}/api/v1/audit", headers=AUTH, timeout=10).json()
    assert latest["action"] == "rename_product" and "Chá Mate Limão 1.25 L" in latest["detail"]


@pytest.mark.parametrize("body,status,message", [
    ({}, 422, 'send "sku", "name" or both'),
    ({"name": "a\u202eb"}, 422, "control or direction character"),
    ({"colour": "red"}, 422, "colour"),
])
def test_a_patch_that_changes_nothing_or_is_not_plain_text_is_refused(drinks, body, status, message):
    images = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in product_images("cha-mate-limao")]
    requests.put(products_url(drinks), files=images, headers=AUTH, timeout=30).raise_for_status()
    answer = requests.patch(products_url(drinks), json=body, headers=AUTH, timeout=10)
    assert answer.status_code == status and message in answer.json()["error"], answer.text


def test_a_patch_of_an_unknown_product_is_404(drinks):
    answer = requests.patch(products_url(drinks, "ghost"), json={"name": "x"}, headers=AUTH, timeout=10)
    assert answer.status_code == 404 and "no product 'ghost'" in answer.json()["error"]


def test_detect_tells_an_unknown_catalog_from_an_unpublished_one(drinks):
    files = {"image": ("frame.jpg", (REPO / "samples" / "shelf" / "frame_0150.jpg").read_bytes(), "image/jpeg")}
    ghost = requests.post(f"{drinks.url}/api/v1/catalogs/ghost/detect", files=files, headers=AUTH, timeout=30)
    assert ghost.status_code == 404 and ghost.json()["error"] == "no catalog 'ghost'"
    unpublished = requests.post(f"{drinks.url}/api/v1/catalogs/drinks/detect", files=files, headers=AUTH, timeout=30)
    assert unpublished.status_code == 404
    assert "'drinks' has no published version" in unpublished.json()["error"] and "publish it first" in unpublished.json()["error"]


def test_an_announcement_to_no_broker_says_what_to_set():
    with pytest.raises(ShelfIDError) as refused:
        publish_announcement(MQTTConfig(host="127.0.0.1", port=free_port()), "drinks", 1)
    message = str(refused.value)
    assert "cannot reach the MQTT broker at 127.0.0.1:" in message and "--no-announce" in message and "mqtt.host" in message


def shelfid(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=300)


def test_sync_after_a_rollback_says_why_it_keeps_the_older_version(tmp_path):
    keys, tree = tmp_path / "keys", tmp_path / "tree"
    assert shelfid("catalog", "keygen", "--out", str(keys)).returncode == 0
    assert shelfid("catalog", "build", str(REPO / "samples" / "shelf-catalog"), "--out", str(tmp_path / "cat")).returncode == 0
    config = tmp_path / "device.yaml"
    config.write_text(f"device: {{data_dir: {tmp_path / 'device'}}}\nmqtt: {{enabled: false}}\n"
                      f"sync: {{server_url: 'file://{tree}', catalog_id: shelf, public_key_file: {keys / 'signing-key.pub.pem'}}}\n")
    for version in (1, 2):
        assert shelfid("catalog", "publish", str(tmp_path / "cat"), "--root", str(tree), "--signing-key", str(keys / "signing-key.pem"),
                       "--catalog-id", "shelf").returncode == 0
        synced = shelfid("sync", "--once", "--config", str(config))
        assert json.loads(synced.stdout)["version"] == version and "never reinstalls" not in synced.stderr  # nothing to explain

    rolled = shelfid("sync", "--rollback", "--config", str(config))
    assert rolled.returncode == 0 and json.loads(rolled.stdout) == {"outcome": "rolled_back", "version": 1}
    assert "never reinstalls v2" in rolled.stderr

    again = shelfid("sync", "--once", "--config", str(config))
    assert again.returncode == 0 and json.loads(again.stdout)["outcome"] == "unchanged"
    assert "catalog v1 is active after a rollback: sync never reinstalls v2 or an older version" in again.stderr
    assert "above v2" in again.stderr

"""Create → upload → publish on a real catalog server → the real agent syncs over HTTP → the daemon's loader identifies."""

from __future__ import annotations

import json

import requests

from edge.core.assembly import load_identifier
from edge.core.images import read_image
from sync_agent.agent import Agent, read_status
from tests.conftest import REPO
from tests.sync.conftest import TOKEN, device_config, product_images

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def put_product(url: str, product_id: str, name: str) -> requests.Response:
    files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in product_images(product_id)]
    return requests.put(f"{url}/api/v1/catalogs/shelf/products/{product_id}", files=files, data={"sku": f"sku-{product_id}", "name": name},
                        headers=AUTH, timeout=30)


def test_publish_sync_identify_then_an_added_product_downloads_only_its_shard(server, keys, tmp_path):
    url = server.url
    assert requests.post(f"{url}/api/v1/catalogs", json={"catalog_id": "shelf", "name": "Drinks"}, headers=AUTH, timeout=10).status_code == 201
    assert put_product(url, "cha-mate-limao", "Chá Mate Limão").status_code == 201
    assert put_product(url, "cha-mate-natural", "Chá Mate Natural").status_code == 201
    published = requests.post(f"{url}/api/v1/catalogs/shelf/publish", headers=AUTH, timeout=120)
    assert published.status_code == 201 and published.json()["version"] == 1

    config = device_config(tmp_path, url, keys[1])
    agent = Agent(config)
    first = agent.sync_once()
    assert first.outcome == "updated" and first.version == 1 and first.blobs_downloaded == published.json()["blobs"]

    # the daemon's own loader opens what the agent installed, and identifies a product on a real shelf frame
    identifier = load_identifier(config, config.device.data_dir / "catalogs" / "current")
    found = identifier.identify_image(read_image(REPO / "samples" / "shelf" / "frame_0150.jpg"))
    assert "cha-mate-limao" in {f.identification.product.product_id for f in found if f.identification.product}

    assert agent.sync_once().outcome == "unchanged"  # conditional GET: 304, nothing downloaded

    assert put_product(url, "coca-cola-can", "Coca-Cola lata").status_code == 201
    second = requests.post(f"{url}/api/v1/catalogs/shelf/publish", headers=AUTH, timeout=120).json()
    assert second["version"] == 2 and second["new_blobs"] == 8  # one new shard: its eight parts
    update = agent.sync_once()
    assert update.outcome == "updated" and update.version == 2
    assert update.blobs_downloaded == 8 < second["blobs"]  # the two unchanged shards were not fetched again

    status = read_status(config.device.data_dir)
    assert status["active_version"] == 2 and status["last_error"] is None and status["last_success"]
    catalog = json.loads((config.device.data_dir / "catalogs" / "current" / "catalog.json").read_text())
    assert catalog["products"] == 3 and catalog["version"] == 2

    assert agent.rollback() == 1
    assert json.loads((config.device.data_dir / "catalogs" / "current" / "catalog.json").read_text())["version"] == 1
    assert agent.sync_once().outcome == "unchanged"  # v2 was installed before: a rollback is not undone by the next poll

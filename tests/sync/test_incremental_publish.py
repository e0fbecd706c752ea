"""Publishing on the catalog server after the first version builds only the shards whose products changed, reuses the
published features of unchanged images, and gives devices a catalog equal to a full build of the same images."""

from __future__ import annotations

import json
import shutil

import numpy as np
import requests

from edge.core.assembly import Models
from edge.core.catalog import load_catalog
from edge.core.catalog_build import build_catalog
from edge.core.config import Config
from sync_agent.agent import Agent
from sync_agent.bundle import shard_of
from tests.conftest import REPO
from tests.sync.conftest import SAMPLE, TOKEN, device_config

AUTH = {"Authorization": f"Bearer {TOKEN}"}
TWIN = "twin-12"  # an id in the same shard as cha-mate-limao: a shard of two products
JUICE = REPO / "tests" / "data" / "grocery-mini" / "iconic-images-and-descriptions" / "Packages" / "Juice"
TWIN_IMAGES = [JUICE / "Bravo-Apple-Juice" / "Bravo-Apple-Juice_Iconic.jpg", JUICE / "Bravo-Orange-Juice" / "Bravo-Orange-Juice_Iconic.jpg"]


def put(url: str, product_id: str, files: list) -> None:
    response = requests.put(f"{url}/api/v1/catalogs/shelf/products/{product_id}", headers=AUTH, timeout=30, data={"name": product_id},
                            files=[("images", (f.name, f.read_bytes(), "image/jpeg")) for f in files])
    assert response.status_code in (200, 201), response.text


def publish(url: str) -> dict:
    response = requests.post(f"{url}/api/v1/catalogs/shelf/publish", headers=AUTH, timeout=120)
    assert response.status_code == 201, response.text
    return response.json()


def per_image(catalog) -> dict:
    """(product id, image sha256) -> embedding, keypoints, descriptors, thumbnail: what a device searches and verifies
    with."""
    out = {}
    for i, row in enumerate(catalog.images):
        f = catalog.features(i)
        out[(row["product_id"], row["sha256"])] = (catalog.embeddings[i].tobytes(), f.keypoints.tobytes(), f.descriptors.tobytes(),
                                                   catalog.image_thumbnail(i))
    return out


def test_one_changed_product_rebuilds_its_shard_only_and_devices_get_what_a_full_build_makes(server, keys, tmp_path):
    assert shard_of(TWIN) == shard_of("cha-mate-limao") != shard_of("coca-cola-can")
    url = server.url
    requests.post(f"{url}/api/v1/catalogs", json={"catalog_id": "shelf"}, headers=AUTH, timeout=10).raise_for_status()
    for pid in ("cha-mate-limao", "cha-mate-natural", "coca-cola-can"):
        put(url, pid, sorted((SAMPLE / pid).glob("*.jpg")))
    put(url, TWIN, TWIN_IMAGES)  # two images: the second has its own thumbnail
    first = publish(url)
    assert first["version"] == 1 and first["shards_built"] is None  # nothing published before: a full build
    agent = Agent(device_config(tmp_path, url, keys[1]))
    assert agent.sync_once().version == 1

    put(url, "cha-mate-limao", [REPO / "samples" / "shelf" / "frame_0150.jpg"])  # new photo, same product
    second = publish(url)
    manifests = [json.loads((tmp_path / "server" / "public" / "catalogs" / "shelf" / "manifest.json").read_text())]
    [shard] = [s for s in manifests[0]["shards"] if s["name"] == f"{shard_of(TWIN):02x}"]
    assert second["shards_built"] == 1 and second["images_reused"] == 2  # the twin's images came from the v1 bundle
    assert second["new_blobs"] <= len(shard["parts"])
    synced = agent.sync_once()
    assert synced.version == 2 and synced.blobs_downloaded == second["new_blobs"]  # that shard's new parts, nothing else

    # the device's v2 is what a full build of the same images makes, image for image
    images = tmp_path / "images"
    for pid in ("cha-mate-natural", "coca-cola-can"):
        shutil.copytree(SAMPLE / pid, images / pid)
    (images / "cha-mate-limao").mkdir()
    shutil.copy(REPO / "samples" / "shelf" / "frame_0150.jpg", images / "cha-mate-limao")
    (images / TWIN).mkdir()
    for image in TWIN_IMAGES:
        shutil.copy(image, images / TWIN)
    models = Models.open(Config())
    detector, embedder, verifier = models.detector, models.embedder, models.verifier
    build_catalog(images, tmp_path / "full", embedder, verifier, detector, "shelf", 2)
    installed = load_catalog(tmp_path / "device" / "catalogs" / "current")
    assert per_image(installed) == per_image(load_catalog(tmp_path / "full"))
    assert installed.thumbnail(TWIN) is not None
    assert sum(thumbnail is not None for *_, thumbnail in per_image(installed).values()) == 5  # every image's pixels

    unchanged = publish(url)
    assert unchanged["shards_built"] == 0 and unchanged["new_blobs"] == 0
    assert requests.delete(f"{url}/api/v1/catalogs/shelf/products/coca-cola-can", headers=AUTH, timeout=10).status_code == 204
    removed = publish(url)
    assert removed["shards_built"] == 1 and removed["images_reused"] == 0 and removed["products"] == 3
    assert agent.sync_once().version == 4
    installed = load_catalog(tmp_path / "device" / "catalogs" / "current")
    assert sorted(p.product_id for p in installed.products) == sorted(["cha-mate-limao", "cha-mate-natural", TWIN])
    assert np.isfinite(np.asarray(installed.embeddings, np.float32)).all()


def test_a_full_build_is_planned_when_the_published_bundle_cannot_be_reused(catalog, keys, tmp_path):
    from sync_agent.server.incremental import plan
    from sync_agent.server.publisher import publish
    from sync_agent.server.storage import LocalStorage
    from sync_agent.signing import load_private_key

    storage = LocalStorage(tmp_path / "public")
    embedder_id, verifier_id = catalog.info["embedder"]["model_id"], catalog.info["verifier"]["id"]
    rows = [{"product_id": p.product_id, "sku": p.sku, "name": p.name,
             "images": [(row["file"].split("/", 1)[1], row["sha256"]) for row in catalog.images if row["product_id"] == p.product_id]}
            for p in catalog.products]
    assert plan(storage, "shelf", rows, embedder_id, verifier_id, "lsh") is None  # nothing published
    publish(storage, catalog, "shelf", load_private_key(keys[0]), 1)
    same = plan(storage, "shelf", rows, embedder_id, verifier_id, "lsh")
    assert same is not None and same.changed == set() and same.products == []  # the rows are what is published
    renamed = plan(storage, "shelf", [rows[0] | {"name": "New name"}] + rows[1:], embedder_id, verifier_id, "lsh")
    assert renamed.products == [rows[0]["product_id"]] and len(renamed.reuse) == 1  # its image's features are reused
    assert plan(storage, "shelf", rows, "another-embedder", verifier_id, "lsh") is None
    assert plan(storage, "shelf", rows, embedder_id, "another-verifier", "lsh") is None
    many = [rows[0] | {"images": [(f"{i}.jpg", f"{i:064x}") for i in range(4096)]}] + rows[1:]
    assert plan(storage, "shelf", many, embedder_id, verifier_id, "lsh") is None  # grown into needing a stored index
    old = tmp_path / "from-before"  # a bundle whose image rows carry no sha256: nothing to compare against
    shutil.copytree(catalog.path, old)
    (old / "images.json").write_text(json.dumps([{k: v for k, v in r.items() if k != "sha256"} for r in catalog.images]))
    publish(storage, load_catalog(old), "shelf", load_private_key(keys[0]), 2)
    assert plan(storage, "shelf", rows, embedder_id, verifier_id, "lsh") is None

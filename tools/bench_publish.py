#!/usr/bin/env python3
"""Publishing at scale on the real catalog server: a full publish of N products, then one product changed.

    python -m tools.bench_publish [--products 10000] [--json]

Each product has one synthetic image (a 240x360 label: coloured blocks, noise and its number, so every image differs
and SIFT finds keypoints), written into a work area that the server imports at start (its own import path, one
transaction). The server runs for real (uvicorn on loopback, the bundled models, local storage); a real device agent
syncs each version over HTTP. Prints: v1 full-publish time and images/s, the one-product publish time, how many
shards it built and images it reused, the blobs and bytes it added, what the device downloaded for it, and the
bundle's bytes per image by part.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import requests
from tqdm import tqdm

from edge.core.config import Config
from sync_agent.agent import Agent
from sync_agent.server.app import ServerSettings, create_app
from sync_agent.signing import generate_keypair
from tools.http_harness import ServerThread

TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def label_image(number: int, rng: np.random.Generator) -> np.ndarray:
    image = np.full((360, 240, 3), rng.integers(40, 220, 3), np.uint8)
    for _ in range(6):
        x, y = rng.integers(0, 200), rng.integers(0, 320)
        cv2.rectangle(image, (int(x), int(y)), (int(x + rng.integers(20, 80)), int(y + rng.integers(20, 80))),
                      tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
    image = cv2.add(image, rng.integers(0, 40, image.shape, dtype=np.uint8))
    cv2.putText(image, f"{number:05d}", (20, 190), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (255, 255, 255), 3)
    return image


def write_work_area(work: Path, products: int) -> None:
    folder = work / "bench"
    folder.mkdir(parents=True)
    (folder / "catalog.json").write_text(json.dumps({"name": "publish benchmark"}))
    rng = np.random.default_rng(0)
    lines = ["product_id,sku,name"]
    for n in tqdm(range(products), desc="product images", unit="img"):
        pid = f"p{n:05d}"
        (folder / pid).mkdir()
        cv2.imwrite(str(folder / pid / "front.jpg"), label_image(n, rng), [cv2.IMWRITE_JPEG_QUALITY, 85])
        lines.append(f"{pid},{pid},Product {n}")
    (folder / "products.csv").write_text("\n".join(lines) + "\n")


def publish(url: str) -> tuple[dict, float]:
    start = time.perf_counter()
    response = requests.post(f"{url}/api/v1/catalogs/bench/publish", headers=AUTH, timeout=7200)
    response.raise_for_status()
    return response.json(), time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_work_area(tmp / "server" / "work", args.products)
        private, public = generate_keypair(tmp / "keys")
        server = ServerThread(create_app(ServerSettings(root=tmp / "server", signing_key=private, token=TOKEN,
                                                        config=Config()))).start()
        try:
            first, first_s = publish(server.url)
            device = Config.model_validate({"device": {"data_dir": str(tmp / "device")}, "mqtt": {"enabled": False},
                                            "sync": {"server_url": server.url, "catalog_id": "bench", "public_key_file": str(public)}})
            agent = Agent(device)
            cold = agent.sync_once()
            changed = tmp / "changed.jpg"
            cv2.imwrite(str(changed), label_image(999_999, np.random.default_rng(1)))
            requests.put(f"{server.url}/api/v1/catalogs/bench/products/p00042", headers=AUTH, timeout=60, data={"name": "Product 42, new label"},
                         files=[("images", ("front.jpg", changed.read_bytes(), "image/jpeg"))]).raise_for_status()
            second, second_s = publish(server.url)
            update = agent.sync_once()
            manifest = json.loads((tmp / "server" / "public" / "catalogs" / "bench" / "manifest.json").read_text())
        finally:
            server.stop()
    per_part: dict[str, int] = {}
    for shard in manifest["shards"]:
        for name, part in shard["parts"].items():
            per_part[name] = per_part.get(name, 0) + part["size"]
    result = {"products": args.products, "images": first["images"],
              "full_publish_s": round(first_s, 1), "full_images_per_s": round(first["images"] / first_s, 1),
              "full_blobs": first["blobs"], "device_cold_sync_bytes": cold.bytes_downloaded,
              "one_product_publish_s": round(second_s, 2), "shards_built": second["shards_built"],
              "images_reused": second["images_reused"], "new_blobs": second["new_blobs"],
              "device_update_blobs": update.blobs_downloaded, "device_update_bytes": update.bytes_downloaded,
              "bundle_bytes_per_image": {name: round(size / first["images"], 1) for name, size in sorted(per_part.items())},
              "index_model_bytes": manifest.get("index", {}).get("size", 0)}
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

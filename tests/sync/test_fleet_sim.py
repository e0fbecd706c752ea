"""tools/fleet_sim.py with five devices: real agents, a real mosquitto and nginx as the origin, the whole scenario."""

from __future__ import annotations

import json
import re

from tools import fleet_sim

FINAL_LINE = re.compile(r"devices=5 switched=(\d+) p95_s=(\d+\.\d+) bytes_per_device=(\d+) origin_requests=(\d+)( [a-z0-9_]+=\S+)+")
SHARD_PARTS = 8  # products, images, embeddings, keypoints, descriptors, scores, offsets, thumbnails


def test_five_devices_switch_to_a_one_product_change_for_a_small_part_of_a_cold_start(sample_catalog_dir, tmp_path, capsys,
                                                                                        monkeypatch):
    monkeypatch.setattr(fleet_sim, "DEVICES_PER_PROCESS", 2)  # three worker processes, as a large fleet has
    out = tmp_path / "fleet.json"
    code = fleet_sim.main(["--devices", "5", "--concurrency", "3", "--catalog", str(sample_catalog_dir), "--work", str(tmp_path / "work"),
                 "--timeout-s", "60", "--out", str(out)])

    last = capsys.readouterr().out.strip().splitlines()[-1]
    line = FINAL_LINE.fullmatch(last)
    assert code == 0 and line, last
    report = json.loads(out.read_text())
    cold, change, rollback = report["cold"], report["change"], report["rollback"]
    assert cold["switched"] == change["switched"] == rollback["switched"] == 5
    assert int(line[1]) == 5 and int(line[3]) == round(change["bytes_per_device"]) and int(line[4]) == change["origin_requests"]
    # v2 adds one product: the manifest, its signature and the parts of one shard of 16, nothing else
    assert change["bytes_per_device"] < 0.2 * cold["bytes_per_device"]
    assert 0 < change["origin_blob_requests"] <= 5 * SHARD_PARTS
    # the rollback (v3 = v1's content) finds every blob still on the devices: manifest and signature only
    assert rollback["origin_blob_requests"] == 0 and rollback["origin_requests"] == 10
    assert cold["subscribed"] and change["announcements_heard"] == 5  # every follower subscribed, and heard v2 once
    assert change["broker_publishes_sent"] in (5, 6)  # one announcement to each device (±1: the counter's own sample)
    assert report["sync_failures"] == 0


"""The sync commands as a newcomer types them: keygen, build + publish a static tree, sync --once, rollback."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def shelfid(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=300)


def test_keygen_publish_sync_and_rollback_from_the_command_line(tmp_path):
    keys, tree = tmp_path / "keys", tmp_path / "tree"
    assert shelfid("catalog", "keygen", "--out", str(keys)).returncode == 0
    refused = shelfid("catalog", "keygen", "--out", str(keys))
    assert refused.returncode == 1 and "already there" in refused.stderr
    assert shelfid("catalog", "build", str(REPO / "samples" / "shelf-catalog"), "--out", str(tmp_path / "cat")).returncode == 0
    for expected in (1, 2):
        run = shelfid("catalog", "publish", str(tmp_path / "cat"), "--root", str(tree), "--signing-key", str(keys / "signing-key.pem"),
                      "--catalog-id", "shelf")
        assert run.returncode == 0 and json.loads(run.stdout)["version"] == expected
    config = tmp_path / "device.yaml"
    config.write_text(f"device: {{data_dir: {tmp_path / 'device'}}}\nmqtt: {{enabled: false}}\n"
                      f"sync: {{server_url: 'file://{tree}', catalog_id: shelf, public_key_file: {keys / 'signing-key.pub.pem'}}}\n")
    synced = shelfid("sync", "--once", "--config", str(config))
    result = json.loads(synced.stdout)
    assert synced.returncode == 0 and result["outcome"] == "updated" and result["version"] == 2
    manifest = json.loads((tree / "catalogs" / "shelf" / "manifest.json").read_text())
    assert len(manifest["shards"]) == 3 and all(len(s["parts"]) == 8 for s in manifest["shards"])  # one product each
    assert result["blobs_downloaded"] == len(manifest["blobs"])  # every distinct part (two capped images' offsets agree)
    nothing_older = shelfid("sync", "--rollback", "--config", str(config))
    assert nothing_older.returncode == 1 and "no version older than v2" in nothing_older.stderr

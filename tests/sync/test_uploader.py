"""A device's field references going up to a real catalog server over HTTP (sync_agent.uploader), with the faults the
queue is for: the server down (delivered later, once), the device killed mid-upload (one upload on the server), a crop
filed under the wrong product (refused, with the server's reason), a token without the upload scope (left pending);
then the commands on both ends: `shelfid catalog references` on the device, `shelfid catalog review` for a manager."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from edge.core.config import Config
from edge.core.field_references import ReferenceStore, new_reference
from sync_agent.uploader import Uploader
from tests.sync.conftest import TOKEN
from tests.sync.test_references import COCA_CROP, LEAO_CROP, LIMAO_CROP, make_token, rows, start_catalog_server
from tools.mqtt_harness import free_port

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from edge.cli import main; sys.exit(main(sys.argv[1:]))"]


def device(tmp_path: Path, url: str, keys, token: str = TOKEN, **sync) -> tuple[Path, Config]:
    """A device config file following catalog `shelf` on `url`, with `token` as its sync token."""
    (tmp_path / "sync-token").write_text(token)
    data = {"device": {"id": "shelf-001", "data_dir": str(tmp_path / "device")}, "mqtt": {"enabled": False},
            "sync": {"server_url": url, "catalog_id": "shelf", "public_key_file": str(keys[1]),
                     "token_file": str(tmp_path / "sync-token"), **sync}}
    path = tmp_path / "device.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, Config.model_validate(data)


def confirm(config: Config, product_id: str, crop: Path, **kw) -> str:
    """What the installer's page does when a crop is confirmed: a reference in the device's store."""
    reference = new_reference("shelf", product_id, kw.pop("sku", ""), kw.pop("name", ""), new_product=kw.pop("new", False),
                              device_id=config.device.id, track_id=kw.pop("track_id", 7), confirmed_by="installer")
    store(config).add(reference, crop.read_bytes())
    return reference.reference_id


def store(config: Config) -> ReferenceStore:
    return ReferenceStore(config.device.data_dir / "references")


def states(config: Config) -> dict[str, str]:
    return {r.reference_id: r.state for r in store(config).all()}


def test_references_confirmed_while_the_server_is_down_are_delivered_later_and_once(tmp_path, keys):
    port = free_port()
    _, config = device(tmp_path, f"http://127.0.0.1:{port}", keys)
    first = confirm(config, "cha-mate-limao", LIMAO_CROP)
    uploader = Uploader(config)
    report = uploader.upload_round()
    assert report.uploaded == [] and report.pending == 1 and "not reachable (connection refused)" in report.error
    assert states(config) == {first: "pending"} and not uploader.due()  # backing off
    second = confirm(config, "coca-cola-can", COCA_CROP)

    server = start_catalog_server(tmp_path / "server", keys, port=port)
    try:
        report = uploader.upload_round()
        assert sorted(report.uploaded) == sorted([first, second]) and report.error is None and report.pending == 0
        assert states(config) == {first: "uploaded", second: "uploaded"}
        assert uploader.upload_round().uploaded == []  # nothing pending: nothing sent
        # the answer lost on the way (a power cut before the state was written): sent again, kept once
        (store(config).root / first / "reference.json").write_text(
            json.dumps(json.loads((store(config).root / first / "reference.json").read_text()) | {"state": "pending"}))
        assert Uploader(config).upload_round().uploaded == [first]
        root = tmp_path / "server"
        assert rows(root, "SELECT reference_id, device_id, track_id, confirmed_by FROM field_references ORDER BY reference_id") \
            == sorted([(first, "shelf-001", 7, "installer"), (second, "shelf-001", 7, "installer")])
        assert rows(root, "SELECT count(*) FROM audit WHERE action = 'upload_reference'") == [(2,)]
    finally:
        server.stop()


class Hold:
    """Holds the server's check of a crop until released, so a client can be killed with its POST in flight."""

    def __init__(self, real):
        self.real, self.entered, self.released = real, threading.Event(), threading.Event()

    def __call__(self, *args):
        self.entered.set()
        self.released.wait(60)
        return self.real(*args)


def test_a_device_killed_mid_upload_uploads_once_when_it_runs_again(tmp_path, keys, monkeypatch):
    from sync_agent.server import references

    server = start_catalog_server(tmp_path / "server", keys)
    try:
        path, config = device(tmp_path, server.url, keys)
        rid = confirm(config, "cha-mate-limao", LIMAO_CROP)
        hold = Hold(references.check_crop)
        monkeypatch.setattr(references, "check_crop", hold)
        sync = subprocess.Popen([*CLI, "sync", "--once", "--config", str(path)], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        assert hold.entered.wait(120), sync.communicate(timeout=5)
        sync.send_signal(signal.SIGKILL)  # mid-POST: the server has the request, the device never gets the answer
        sync.wait(10)
        hold.released.set()
        deadline = time.monotonic() + 30
        while rows(tmp_path / "server", "SELECT count(*) FROM field_references") != [(1,)] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert states(config) == {rid: "pending"}  # the device does not know the server has it

        again = subprocess.run([*CLI, "sync", "--once", "--config", str(path)], cwd=REPO, capture_output=True, text=True, timeout=180)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["references"] == {"uploaded": 1, "refused": 0, "pending": 0, "rejected": 0, "removed": 0,
                                                          "error": None}
        assert states(config) == {rid: "uploaded"}
        assert rows(tmp_path / "server", "SELECT reference_id, state FROM field_references") == [(rid, "pending")]
        assert rows(tmp_path / "server", "SELECT count(*) FROM audit WHERE action = 'upload_reference'") == [(1,)]
    finally:
        hold.released.set()
        server.stop()


def test_a_crop_filed_under_the_wrong_product_is_refused_with_the_servers_reason(tmp_path, keys):
    server = start_catalog_server(tmp_path / "server", keys)
    try:
        _, config = device(tmp_path, server.url, keys)
        wrong = confirm(config, "cha-mate-limao", COCA_CROP)
        unknown = confirm(config, "no-such-product", LIMAO_CROP)
        right = confirm(config, "cha-mate-limao", LIMAO_CROP)
        uploader = Uploader(config)
        report = uploader.upload_round()
        assert report.uploaded == [right] and set(report.refused) == {wrong, unknown} and report.error is None
        refused = {r.reference_id: r for r in store(config).all()}
        assert refused[wrong].state == "refused" and "identified as 'coca-cola-can'" in refused[wrong].refused_reason
        assert refused[unknown].state == "refused" and "no product 'no-such-product'" in refused[unknown].refused_reason
        assert uploader.upload_round().uploaded == [] and rows(tmp_path / "server", "SELECT count(*) FROM field_references") == [(2,)]
        # the disputed one waits on the server for a manager; the malformed one was never stored
        assert dict(rows(tmp_path / "server", "SELECT reference_id, state FROM field_references")) == {wrong: "disputed", right: "pending"}
    finally:
        server.stop()


def test_a_token_without_the_upload_scope_leaves_the_references_pending(tmp_path, keys):
    server = start_catalog_server(tmp_path / "server", keys)
    try:
        read = make_token(server.url, "read")["Authorization"].removeprefix("Bearer ")
        _, config = device(tmp_path, server.url, keys, token=read)
        rid = confirm(config, "cha-mate-limao", LIMAO_CROP)
        report = Uploader(config).upload_round()
        assert report.pending == 1 and "HTTP 403" in report.error and "upload scope" in report.error
        assert states(config) == {rid: "pending"} and rows(tmp_path / "server", "SELECT count(*) FROM field_references") == [(0,)]
        upload = make_token(server.url, "upload")["Authorization"].removeprefix("Bearer ")
        _, config = device(tmp_path, server.url, keys, token=upload)
        assert Uploader(config).upload_round().uploaded == [rid]
    finally:
        server.stop()


def test_a_reference_a_manager_rejects_is_refused_on_the_device_that_sent_it(tmp_path, keys):
    import requests

    server = start_catalog_server(tmp_path / "server", keys)
    try:
        upload = make_token(server.url, "upload")["Authorization"].removeprefix("Bearer ")
        _, config = device(tmp_path, server.url, keys, token=upload)
        kept, dropped = confirm(config, "cha-mate-limao", LIMAO_CROP), confirm(config, "coca-cola-can", COCA_CROP)
        uploader = Uploader(config)
        assert sorted(uploader.upload_round().uploaded) == sorted([kept, dropped])
        answer = requests.post(f"{server.url}/api/v1/catalogs/shelf/references/{dropped}/reject", json={"reason": "blurred"},
                               headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert answer.status_code == 200, answer.text
        report = uploader.upload_round()  # nothing to upload; the review is looked up with the device's upload token
        assert report.rejected == [dropped] and states(config) == {kept: "uploaded", dropped: "refused"}
        assert next(r for r in store(config).all() if r.reference_id == dropped).refused_reason == \
            "rejected by a catalog manager: blurred"
        read = make_token(server.url, "read")
        assert requests.get(f"{server.url}/api/v1/catalogs/shelf/references/{kept}/state", headers=read, timeout=10).status_code == 403
    finally:
        server.stop()


def test_the_sync_loop_uploads_a_reference_soon_after_it_is_confirmed(tmp_path, keys, monkeypatch):
    from sync_agent import agent as agent_module
    from sync_agent.agent import Agent, run_forever

    monkeypatch.setattr(agent_module, "REFERENCES_LOOK_S", 0.2)
    server = start_catalog_server(tmp_path / "server", keys)
    stop, wake = threading.Event(), threading.Event()
    try:
        _, config = device(tmp_path, server.url, keys)
        loop = threading.Thread(target=run_forever, args=(Agent(config), stop, wake, Uploader(config)), daemon=True)
        loop.start()
        time.sleep(0.5)
        rid = confirm(config, "cha-mate-limao", LIMAO_CROP)  # after the loop's first sync: found between syncs
        deadline = time.monotonic() + 60
        while states(config)[rid] != "uploaded" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert states(config)[rid] == "uploaded"
    finally:
        stop.set()
        wake.set()
        server.stop()


def test_confirm_upload_review_publish_sync_with_the_commands_of_both_ends(tmp_path, keys, capsys):
    """The device's and the manager's commands over real HTTP; the device's reference leaves once its catalog holds it."""
    from edge.cli import main

    server = start_catalog_server(tmp_path / "server", keys)
    try:
        path, config = device(tmp_path, server.url, keys)
        new = confirm(config, "matte-leao", LEAO_CROP, new=True, sku="7890000000001", name="Matte Leão 1.5 L", track_id=41)
        dropped = confirm(config, "cha-mate-natural", LIMAO_CROP)
        assert main(["catalog", "references", "--config", str(path)]) == 0
        listed = capsys.readouterr().out.splitlines()
        assert sorted(line.split()[:3] for line in listed) == sorted([[new, "pending", "matte-leao"],
                                                                      [dropped, "pending", "cha-mate-natural"]])
        assert main(["catalog", "references", "remove", dropped, "--config", str(path)]) == 0
        assert main(["catalog", "references", "remove", "nope", "--config", str(path)]) == 1  # unknown: nothing removed
        capsys.readouterr()
        assert Uploader(config).upload_round().uploaded == [new]

        token = tmp_path / "manager-token"
        token.write_text(make_token(server.url, "write")["Authorization"].removeprefix("Bearer "))
        review = ["--server", server.url, "--catalog", "shelf", "--token-file", str(token)]
        assert main(["catalog", "review", "list", *review]) == 0
        assert capsys.readouterr().out.split()[:3] == [new, "pending", "matte-leao"]
        assert main(["catalog", "review", "show", new, "--crop", str(tmp_path / "crop.jpg"), *review]) == 0
        assert json.loads(capsys.readouterr().out)["track_id"] == 41
        assert (tmp_path / "crop.jpg").read_bytes() == LEAO_CROP.read_bytes()
        assert main(["catalog", "review", "accept", new, "--note", "new line on shelf 3", *review]) == 0
        assert json.loads(capsys.readouterr().out)["state"] == "accepted"
        assert main(["catalog", "review", "reject", new, "--reason", "too late", *review]) == 1  # accepted already: 409
        assert "HTTP 409" in capsys.readouterr().err

        import requests

        requests.post(f"{server.url}/api/v1/catalogs/shelf/publish", headers={"Authorization": f"Bearer {TOKEN}"},
                      timeout=300).raise_for_status()
        synced = subprocess.run([*CLI, "sync", "--once", "--config", str(path)], cwd=REPO, capture_output=True, text=True, timeout=180)
        assert synced.returncode == 0, synced.stderr
        result = json.loads(synced.stdout)
        assert result["outcome"] == "updated" and result["references"]["removed"] == 1
        assert store(config).all() == []  # the installed catalog holds it now: field-<id>.jpg in its images.json
        files = [row["file"] for row in json.loads((config.device.data_dir / "catalogs" / "current" / "images.json").read_text())]
        assert f"matte-leao/field-{new}.jpg" in files
    finally:
        server.stop()


@pytest.mark.parametrize("url", ["file:///srv/catalogs"])
def test_a_device_without_a_catalog_server_keeps_its_references_pending_and_says_why(tmp_path, keys, url):
    (tmp_path / "sync-token").write_text(TOKEN)
    config = Config.model_validate({"device": {"id": "d", "data_dir": str(tmp_path / "device")},
                                    "sync": {"server_url": url, "catalog_id": "shelf", "public_key_file": str(keys[1])}})
    rid = confirm(config, "cha-mate-limao", LIMAO_CROP)
    report = Uploader(config).upload_round()
    assert report.pending == 1 and "sync.references_url" in report.error and states(config) == {rid: "pending"}


def test_a_reference_is_found_in_a_large_images_json_across_a_read_boundary(tmp_path):
    from sync_agent.uploader import files_named

    row = '{"product_id": "p", "file": "p/field-' + "a" * 32 + '.jpg"}'
    padding = " " * ((1 << 20) - 20)  # the row straddles the first 1 MB read
    (tmp_path / "images.json").write_text("[" + padding + row + "]")
    needles = {f"/field-{c * 32}.jpg\"": c for c in "ab"}
    assert files_named(tmp_path / "images.json", needles) == {"a"}
    assert files_named(tmp_path / "missing.json", needles) == set()

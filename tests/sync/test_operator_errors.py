"""What an installer sees when catalog serve or sync goes wrong: one line saying what failed and what to check, the right exit code."""

from __future__ import annotations

import io
import logging
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from PIL import Image

from sync_agent.agent import Agent, read_status
from sync_agent.commands import server_token
from sync_agent.errors import FetchError, SyncError
from sync_agent.fetcher import HTTPFetcher
from tests.conftest import REPO
from tests.sync.conftest import TOKEN, device_config
from tools.mqtt_harness import free_port

MODEL_IDS = ("m" * 64, "v")  # the failures below all happen before a manifest is compared with the device's models


def shelfid(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=300)


def token_file(path: Path, mode: int = 0o600) -> Path:
    path.write_text(TOKEN)
    path.chmod(mode)
    return path


def device_yaml(tmp_path: Path, server_url: str, public_key: Path, catalog_id: str = "shelf") -> Path:
    config = tmp_path / "device.yaml"
    config.write_text(f"device: {{data_dir: {tmp_path / 'device'}}}\nmqtt: {{enabled: false}}\n"
                      f"sync: {{server_url: '{server_url}', catalog_id: {catalog_id}, public_key_file: {public_key}}}\n")
    return config


class Answer(BaseHTTPRequestHandler):
    """Answers every GET with the class's `status`: a proxy or server in front of the bundle tree that refuses or breaks."""

    status = 500

    def do_GET(self):
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def answer(status: int) -> type[Answer]:
    return type("Answer", (Answer,), {"status": status})


@pytest.fixture
def http_server():
    """start(handler class) -> the base URL of a plain HTTP server answering with it on loopback."""
    servers = []

    def start(handler: type[BaseHTTPRequestHandler]) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# catalog serve

def test_serve_with_a_missing_token_file_names_it_and_exits_2(tmp_path, keys):
    run = shelfid("catalog", "serve", "--root", str(tmp_path / "server"), "--signing-key", str(keys[0]),
                  "--token-file", "/no/such/file", "--port", str(free_port()))
    assert run.returncode == 2
    assert run.stderr == "error: --token-file /no/such/file: no such file; put the write token in it, or pass the file that holds it\n"


def test_serve_on_a_port_in_use_says_so_before_announcing_anything_and_exits_1(tmp_path, keys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = shelfid("catalog", "serve", "--root", str(tmp_path / "server"), "--signing-key", str(keys[0]),
                      "--token-file", str(token_file(tmp_path / "token")), "--port", str(port))
    assert run.returncode == 1
    assert run.stderr == (f"error: cannot listen on 127.0.0.1:{port}: address already in use (another catalog server? choose --port)\n")


def test_a_token_file_others_can_read_is_warned_about_with_the_fix(tmp_path, caplog):
    private = token_file(tmp_path / "private")
    with caplog.at_level(logging.WARNING, logger="sync_agent.commands"):
        assert server_token(private) == TOKEN
    assert caplog.messages == []
    shared = token_file(tmp_path / "shared", mode=0o644)
    with caplog.at_level(logging.WARNING, logger="sync_agent.commands"):
        assert server_token(shared) == TOKEN
    assert caplog.messages == [f"--token-file {shared} is readable by group or others (mode 644): run chmod 600 {shared}"]


# the server's uploads

def tiny_png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("width,height", [(1, 1), (31, 200)])
def test_an_image_smaller_than_32_px_is_refused_with_its_size(server, width, height):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    requests.post(f"{server.url}/api/v1/catalogs", json={"catalog_id": "shelf"}, headers=auth, timeout=10).raise_for_status()
    r = requests.put(f"{server.url}/api/v1/catalogs/shelf/products/p1", headers=auth, timeout=30,
                     files=[("images", ("x.png", tiny_png(width, height), "image/png"))])
    assert r.status_code == 422
    assert r.json() == {"error": f"image 'x.png' is {width}×{height} px; at least 32×32 is needed", "status": 422}
    assert requests.get(f"{server.url}/api/v1/catalogs/shelf", headers=auth, timeout=10).json()["products"] == []


# shelfid sync

def test_sync_once_with_the_server_down_says_it_is_not_reachable_and_records_the_same_line(tmp_path, keys):
    url = f"http://127.0.0.1:{free_port()}"
    run = shelfid("sync", "--once", "--config", str(device_yaml(tmp_path, url, keys[1])))
    line = f"catalog server {url}/ not reachable (connection refused): is it running? check sync.server_url"
    assert run.returncode == 1 and run.stderr.splitlines()[-1] == f"error: {line}"
    assert "Traceback" not in run.stderr and "HTTPConnectionPool" not in run.stderr
    assert read_status(tmp_path / "device")["last_error"] == line


def test_sync_once_for_a_misspelt_catalog_id_says_it_is_not_published(tmp_path, keys, server):
    run = shelfid("sync", "--once", "--config", str(device_yaml(tmp_path, server.url, keys[1], catalog_id="shlef")))
    line = (f"catalog 'shlef' is not published at {server.url}/catalogs/shlef/manifest.json (HTTP 404): "
            "check sync.catalog_id, and that the catalog was published")
    assert run.returncode == 1 and run.stderr.splitlines()[-1] == f"error: {line}"
    assert read_status(tmp_path / "device")["last_error"] == line


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_points_at_sync_token_file(tmp_path, keys, http_server, status):
    url = http_server(answer(status))
    (tmp_path / "token").write_text("wrong")
    config = device_config(tmp_path, url, keys[1], token_file=str(tmp_path / "token"))
    with pytest.raises(FetchError) as refused:
        Agent(config, model_ids=MODEL_IDS).sync_once()
    assert str(refused.value) == f"catalog server {url}/ refused the token (HTTP {status}): check sync.token_file"
    assert read_status(config.device.data_dir)["last_error"] == str(refused.value)


def test_a_server_error_names_the_url_and_the_status(tmp_path, keys, http_server):
    url = http_server(answer(500))
    with pytest.raises(FetchError, match=rf"^GET {url}/catalogs/shelf/manifest.json: HTTP 500 from the server$"):
        Agent(device_config(tmp_path, url, keys[1]), model_ids=MODEL_IDS).sync_once()


def test_an_unknown_host_name_is_not_reachable(monkeypatch):
    def no_such_host(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    with pytest.raises(FetchError) as failed:
        HTTPFetcher().get("http://catalog.shop.example:8080/catalogs/shelf/manifest.json", 1000)
    assert str(failed.value) == ("catalog server http://catalog.shop.example:8080/ not reachable (host name not found): "
                                 "is it running? check sync.server_url")


def test_a_connect_timeout_is_not_reachable(monkeypatch):
    import urllib3.connection

    def no_answer(*args, **kwargs):
        raise TimeoutError("timed out")

    monkeypatch.setattr(urllib3.connection.connection, "create_connection", no_answer)
    with pytest.raises(FetchError, match=r"^catalog server http://10.1.2.3:8080/ not reachable \(timed out\): is it running\?"):
        HTTPFetcher().get("http://10.1.2.3:8080/catalogs/shelf/manifest.json", 1000)


def test_a_server_that_accepts_but_never_answers_is_cut_off_with_one_line():
    with socket.socket() as silent:  # listening, never accepting: the connection opens, no answer ever comes
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/catalogs/shelf/manifest.json"
        with pytest.raises(FetchError) as failed:
            HTTPFetcher(timeout_s=0.3).get(url, 1000)
    assert str(failed.value) == f"GET {url}: no answer within 0.3 s (a stalled server? check sync.server_url)"


def test_status_json_keeps_one_line_even_for_an_unexpected_failure(tmp_path, keys):
    class Broken:
        def get(self, *args, **kwargs):
            raise ValueError("first line\n  second line")

    config = device_config(tmp_path, "http://127.0.0.1:9", keys[1])
    with pytest.raises(SyncError, match="unexpected ValueError"):
        Agent(config, fetcher=Broken(), model_ids=MODEL_IDS).sync_once()
    assert read_status(config.device.data_dir)["last_error"] == "unexpected ValueError: first line second line"


def test_a_body_cut_short_is_one_line_naming_the_url(http_server):
    class CutShort(Answer):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"{" * 10)
            self.close_connection = True

    url = f"{http_server(CutShort)}/catalogs/shelf/manifest.json"
    with pytest.raises(FetchError) as failed:
        HTTPFetcher().get(url, 10_000)
    assert str(failed.value) == f"GET {url}: the transfer broke off (the body ended early)"


def test_a_missing_signing_key_is_a_bad_invocation_in_one_line(tmp_path, sample_catalog_dir):
    import subprocess
    import sys

    from tests.conftest import REPO

    run = subprocess.run([sys.executable, "-m", "edge.cli", "catalog", "publish", str(sample_catalog_dir), "--root", str(tmp_path / "tree"),
                          "--signing-key", str(tmp_path / "nope.pem")], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip() == (f"error: --signing-key {tmp_path / 'nope.pem'}: No such file or directory "
                                  "(make a key pair with `shelfid catalog keygen`)")

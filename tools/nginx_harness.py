"""A real nginx serving a bundle tree on a free loopback port, and a relay in front of it that can cut a response short.

    nginx = Nginx(tmp / "nginx", docroot=tmp / "public").start()   # config, pid, logs, temp paths all under tmp/nginx
    relay = CutRelay(nginx.port)                                    # what passes is recorded; cut_after(path, n) cuts once

The config is the one the manual (docs/catalogs.md) gives for a CDN origin: the tree as static files, manifests revalidated on every
poll (`Cache-Control: no-cache`, nginx's ETag answered 304), blobs cached for good (their name is their hash), ranges
served (206) so a device resumes a cut download.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from tools.mqtt_harness import free_port, wait_listening

CONFIG = """daemon off;
master_process on;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
{user}
events {{ worker_connections 64; }}
http {{
    types {{ application/json json; }}
    default_type application/octet-stream;
    access_log {folder}/access.log;
    client_body_temp_path {folder}/temp/body;
    proxy_temp_path {folder}/temp/proxy;
    fastcgi_temp_path {folder}/temp/fastcgi;
    uwsgi_temp_path {folder}/temp/uwsgi;
    scgi_temp_path {folder}/temp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {docroot};
        location /catalogs/ {{ add_header Cache-Control "no-cache"; }}
        location /blobs/ {{ add_header Cache-Control "public, max-age=31536000, immutable"; }}
    }}
}}
"""


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        raise RuntimeError("nginx is not installed: `make test` installs it (apt-get install nginx)")
    return found


def nginx_version() -> str:
    done = subprocess.run([nginx_binary(), "-v"], capture_output=True, text=True, check=True)
    return done.stderr.strip().split("/", 1)[-1]


class Nginx:
    def __init__(self, folder: Path, docroot: Path, port: int | None = None):
        self.folder, self.docroot, self.port = folder, docroot, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> Nginx:
        (self.folder / "temp").mkdir(parents=True, exist_ok=True)
        user = "user root;" if os.geteuid() == 0 else ""  # started as root, workers stay root: pytest's tmp is 0700
        conf = self.folder / "nginx.conf"
        conf.write_text(CONFIG.format(folder=self.folder, docroot=self.docroot, port=self.port, user=user))
        log = self.folder / "error.log"
        self.process = subprocess.Popen([nginx_binary(), "-p", f"{self.folder}/", "-e", str(log), "-c", str(conf)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(self.process, self.port, "nginx", log, 10)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # nginx's fast shutdown: the master ends its workers, then itself
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@dataclass(frozen=True)
class Exchange:
    request: str  # request line and headers as the client sent them
    response: str  # status line and headers as the origin answered
    cut: bool  # the body was cut short by the relay

    def header(self, side: str, name: str) -> str | None:
        for line in getattr(self, side).split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    @property
    def path(self) -> str:
        return self.request.split(" ", 2)[1]

    @property
    def status(self) -> int:
        return int(self.response.split(" ", 2)[1])


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """An HTTP head (up to the blank line) and what arrived after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the end of the head")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


class CutRelay:
    """One request per connection from a client to the origin on `upstream_port`, recorded; `cut_after(path, n)` makes
    the next response for `path` stop after n body bytes, the connection closed as a dropped link would."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.exchanges: list[Exchange] = []
        self._cuts: dict[str, int] = {}
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="cut-relay", daemon=True).start()

    def cut_after(self, path: str, body_bytes: int) -> None:
        with self._lock:
            self._cuts[path] = body_bytes

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed by close()
                return
            threading.Thread(target=self._relay_one, args=(client,), daemon=True).start()

    def _relay_one(self, client: socket.socket) -> None:
        try:
            self._relay(client)
        except OSError:  # a client or origin gone mid-way: that connection ends, the relay goes on
            client.close()

    def _relay(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self.upstream_port)) as origin:
            head, _ = read_head(client)  # GETs only: no body follows
            lines = [line for line in head.decode("latin-1").split("\r\n") if not line.lower().startswith("connection:")]
            origin.sendall(("\r\n".join(lines + ["Connection: close"]) + "\r\n\r\n").encode("latin-1"))
            response, body = read_head(origin)
            with self._lock:  # recorded before the client sees a byte of the answer
                limit = self._cuts.pop(lines[0].split(" ")[1], None)
                self.exchanges.append(Exchange("\r\n".join(lines), response.decode("latin-1"), limit is not None))
            client.sendall(response + b"\r\n\r\n")
            sent = 0
            while body or (body := origin.recv(65536)):
                if limit is not None and sent + len(body) >= limit:
                    client.sendall(body[:limit - sent])
                    break
                client.sendall(body)
                sent += len(body)
                body = b""
            client.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()

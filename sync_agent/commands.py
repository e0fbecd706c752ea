"""The `shelfid` subcommands of catalog sync: keygen, publish, serve (central) and sync (device, with its field
reference uploads)."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from edge.core.config import Config, read_secret
from edge.core.errors import ConfigFileError
from sync_agent.errors import SyncError

log = logging.getLogger(__name__)
SERVER_TOKEN_ENV = "SHELFID_SERVER_TOKEN"


def keygen(args: argparse.Namespace) -> int:
    from sync_agent.signing import generate_keypair

    private, public = generate_keypair(args.out)
    print(f"private key: {private} (keep it on the catalog server only)\npublic key:  {public} (sync.public_key_file on devices)")
    return 0


def publish_folder(args: argparse.Namespace) -> int:
    """A catalog built with `shelfid catalog build` into a static bundle tree (any web server or bucket serves it)."""
    from edge.core.catalog import load_catalog
    from sync_agent.server.publisher import publish
    from sync_agent.server.storage import LocalStorage
    from sync_agent.signing import load_private_key

    catalog = load_catalog(args.catalog)
    done = publish(LocalStorage(args.root), catalog, args.catalog_id or catalog.catalog_id, load_private_key(args.signing_key),
                   args.version)
    print(json.dumps({"catalog_id": done.catalog_id, "version": done.version, "blobs": done.blobs, "new_blobs": done.new_blobs}))
    return 0


def serve(args: argparse.Namespace, config: Config) -> int:
    import uvicorn

    from sync_agent.server.app import ServerSettings, create_app
    from sync_agent.server.http import server_config
    from sync_agent.server.storage import S3Storage

    token = server_token(args.token_file)
    if token is None and not args.no_auth:
        raise SyncError(f"no write token: pass --token-file, set ${SERVER_TOKEN_ENV} or the credential 'server-token' "
                        "(or --no-auth for a closed test bench)")
    check_can_listen(args.host, args.port)
    storage = None
    if args.s3_bucket:
        storage = S3Storage(args.s3_bucket, args.s3_prefix, os.environ.get("AWS_ENDPOINT_URL"))
    settings = ServerSettings(root=args.root, signing_key=args.signing_key, token=token, storage=storage, config=config,
                              announce=config.mqtt.enabled and args.announce)
    app = create_app(settings)
    log.info("catalog server on http://%s:%d (work area %s, %s storage)", args.host, args.port, args.root,
             "S3" if storage else "local")
    if settings.announce:
        log.info("announcing published versions on MQTT at %s:%d (mqtt.* of %s; --no-announce to stop)", config.mqtt.host,
                 config.mqtt.port, f"--config {args.config}" if args.config else "the built-in defaults: no --config given")
    uvicorn.Server(server_config(app, args.host, args.port, settings)).run()  # deadlines and a connection cap (server.http)
    return 0


def server_token(token_file: Path | None) -> str | None:
    """The write token (read_secret's order); a named file that is missing, unreadable or empty is a bad invocation."""
    where = f"--token-file {token_file}" if token_file is not None else "the credential 'server-token'"
    try:
        token = read_secret(token_file, "server-token", SERVER_TOKEN_ENV)
    except FileNotFoundError:
        raise ConfigFileError(f"{where}: no such file; put the write token in it, or pass the file that holds it") from None
    except IsADirectoryError:
        raise ConfigFileError(f"{where}: a folder, not a file; pass the file that holds the write token") from None
    except OSError as exc:
        raise ConfigFileError(f"{where}: cannot read it ({exc.strerror}): check its owner and mode") from None
    except UnicodeDecodeError:
        raise ConfigFileError(f"{where}: not UTF-8 text; the file holds the write token on one line") from None
    if token == "":
        raise ConfigFileError(f"{where}: empty; put the write token in it")
    mode = token_file.stat().st_mode & 0o777 if token_file is not None else 0
    if mode & 0o077:
        log.warning("--token-file %s is readable by group or others (mode %03o): run chmod 600 %s", token_file, mode, token_file)
    return token


LISTEN_PROBLEMS = {
    errno.EADDRINUSE: "address already in use (another catalog server? choose --port)",
    errno.EACCES: "permission denied (ports below 1024 need privileges; choose --port)",
    errno.EADDRNOTAVAIL: "no such address on this machine (check --host)",
}


def check_can_listen(host: str, port: int) -> None:
    """Bind host:port as uvicorn (asyncio's create_server) will, and let go: a taken port is one clear line, before anything starts."""
    if not 0 <= port <= 65535:
        raise ConfigFileError(f"--port {port}: not a TCP port (0 to 65535)")
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError):
        raise SyncError(f"cannot listen on {host}:{port}: no such address on this machine (check --host)") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise SyncError(f"cannot listen on {host}:{port}: {LISTEN_PROBLEMS.get(exc.errno, exc.strerror)}") from None


def held_back(config: Config, active: int) -> str:
    """Why sync leaves `active` in place although a newer version was installed before (a rollback), or ''."""
    from sync_agent.agent import read_status

    highest = int(read_status(config.device.data_dir).get("highest_version") or 0)
    if highest <= active:
        return ""
    return (f"catalog v{active} is active after a rollback: sync never reinstalls v{highest} or an older version, "
            f"and installs the next version the server publishes above v{highest}")


def sync(args: argparse.Namespace, config: Config) -> int:
    from sync_agent.agent import Agent, active_version, run_forever
    from sync_agent.uploader import Uploader

    agent = Agent(config)
    if args.rollback:
        version = agent.rollback()
        print(json.dumps({"outcome": "rolled_back", "version": version}))
        print(held_back(config, version), file=sys.stderr)
        return 0
    uploader = Uploader(config)
    if args.once:
        try:
            result = agent.sync_once()
        finally:  # a failed sync still sends the field references: the catalog server may be up while the tree is not
            references = uploader.upload_round()
        print(json.dumps(result.__dict__ | {"references": references.summary()}))
        if result.outcome == "unchanged" and (note := held_back(config, result.version)):
            print(note, file=sys.stderr)
        if references.error:
            print(f"field references: {references.error}; {references.pending} stay pending for the next sync", file=sys.stderr)
        return 0
    stop, wake = threading.Event(), threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: (stop.set(), wake.set()))
    follower = None
    if config.mqtt.enabled:
        from sync_agent.announce import follow_announcements

        follower = follow_announcements(config.mqtt, config.sync.catalog_id, config.device.id, wake,
                                       lambda: active_version(agent.layout))
    try:
        run_forever(agent, stop, wake, uploader)
    finally:
        if follower is not None:
            follower.loop_stop()
    return 0

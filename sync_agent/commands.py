"""The `shelfid` subcommands of catalog sync: keygen, publish, serve (central) and sync (device)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading

from edge.config import Config, read_secret
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
    from edge.catalog import load_catalog
    from sync_agent.publish import publish
    from sync_agent.signing import load_private_key
    from sync_agent.storage import LocalStorage

    catalog = load_catalog(args.catalog)
    done = publish(LocalStorage(args.root), catalog, args.catalog_id or catalog.catalog_id, load_private_key(args.signing_key),
                   args.version)
    print(json.dumps({"catalog_id": done.catalog_id, "version": done.version, "blobs": done.blobs, "new_blobs": done.new_blobs}))
    return 0


def serve(args: argparse.Namespace, config: Config) -> int:
    import uvicorn

    from sync_agent.server import ServerSettings, create_app
    from sync_agent.storage import S3Storage

    token = read_secret(args.token_file, "server-token", SERVER_TOKEN_ENV)
    if token is None and not args.no_auth:
        raise SyncError(f"no write token: pass --token-file, set ${SERVER_TOKEN_ENV} or the credential 'server-token' "
                        "(or --no-auth for a closed test bench)")
    storage = None
    if args.s3_bucket:
        storage = S3Storage(args.s3_bucket, args.s3_prefix, os.environ.get("AWS_ENDPOINT_URL"))
    settings = ServerSettings(root=args.root, signing_key=args.signing_key, token=token, storage=storage, config=config,
                              announce=config.mqtt.enabled and args.announce)
    app = create_app(settings)
    log.info("catalog server on http://%s:%d (work area %s, %s storage)", args.host, args.port, args.root,
             "S3" if storage else "local")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def sync(args: argparse.Namespace, config: Config) -> int:
    from sync_agent.agent import Agent, run_forever

    agent = Agent(config)
    if args.rollback:
        version = agent.rollback()
        print(json.dumps({"outcome": "rolled_back", "version": version}))
        return 0
    if args.once:
        result = agent.sync_once()
        print(json.dumps(result.__dict__))
        return 0
    stop, wake = threading.Event(), threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: (stop.set(), wake.set()))
    follower = None
    if config.mqtt.enabled:
        from sync_agent.announce import follow_announcements

        follower = follow_announcements(config.mqtt, config.sync.catalog_id, config.device.id, wake, agent.layout.active_version)
    try:
        run_forever(agent, stop, wake)
    finally:
        if follower is not None:
            follower.loop_stop()
    return 0

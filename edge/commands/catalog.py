"""`shelfid catalog build|keygen|publish|serve`: a catalog from product photos, signed bundles, the central server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.commands.common import TOOL_CONFIG_HELP, config_or_defaults


def add_parsers(sub: argparse._SubParsersAction) -> None:
    catalog = sub.add_parser("catalog", help="build, publish and serve catalogs")
    actions = catalog.add_subparsers(dest="catalog_command", metavar="ACTION", required=True)
    for add in (_add_build, _add_keygen, _add_publish, _add_serve):
        add(actions)


def _add_build(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser("build", help="a local catalog from <product_id>/*.jpg (+ optional products.csv)")
    p.add_argument("images_dir", type=Path, help="folder of product folders")
    p.add_argument("--out", type=Path, required=True, help="catalog folder to write")
    p.add_argument("--config", type=Path, help=f"{TOOL_CONFIG_HELP}: the models")
    p.add_argument("--catalog-id", help="catalog id (default: the folder name)")
    p.add_argument("--version", type=int, default=1, help="catalog version number")
    p.add_argument("--no-detect", action="store_true", help="use whole images, without the detector")
    p.add_argument("--force", action="store_true", help="replace an existing catalog folder")
    p.add_argument("--variants", type=int, default=0, help="extra shelf-like views per image, for retrieval only")
    p.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    from edge.core.assembly import Models
    from edge.core.catalog import stored_model
    from edge.core.catalog_build import build_catalog

    config = config_or_defaults(args.config)
    models = Models.open(config)
    detector, embedder, verifier = models.detector, models.embedder, models.verifier
    report = build_catalog(args.images_dir, args.out, embedder, verifier, None if args.no_detect else detector,
                           args.catalog_id, args.version, args.force, args.variants, index_kind=config.index.build,
                           index_model=stored_model(args.out))
    for line in report.skipped:
        print(f"skipped: {line}", file=sys.stderr)
    print(f"wrote {args.out}: {report.products} products, {report.images} images, {len(report.skipped)} skipped")
    return 0


def _add_keygen(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser("keygen", help="an Ed25519 key pair for signing published catalogs")
    p.add_argument("--out", type=Path, required=True, help="folder for signing-key.pem and signing-key.pub.pem")
    p.set_defaults(func=_keygen)


def _keygen(args: argparse.Namespace) -> int:
    from sync_agent.commands import keygen

    return keygen(args)


def _add_publish(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser("publish", help="a built catalog folder into a static, signed bundle tree")
    p.add_argument("catalog", type=Path, help="catalog folder (from `shelfid catalog build`)")
    p.add_argument("--root", type=Path, required=True, help="bundle tree (catalogs/ + blobs/) to write into")
    p.add_argument("--signing-key", type=Path, required=True, help="Ed25519 private key (PEM)")
    p.add_argument("--catalog-id", help="catalog id (default: the catalog's own)")
    p.add_argument("--version", type=int, help="version (default: the published one + 1)")
    p.set_defaults(func=_publish)


def _publish(args: argparse.Namespace) -> int:
    from sync_agent.commands import publish_folder

    return publish_folder(args)


def _add_serve(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser("serve", help="the central catalog server (HTTP API + the static bundle tree)")
    p.add_argument("--root", type=Path, required=True, help="work area and (local storage) the published tree")
    p.add_argument("--signing-key", type=Path, required=True, help="Ed25519 private key (PEM) that signs manifests")
    p.add_argument("--token-file", type=Path, help="file holding the write token (else credential 'server-token' or $SHELFID_SERVER_TOKEN)")
    p.add_argument("--no-auth", action="store_true", help="no token on write endpoints (closed test benches only)")
    p.add_argument("--config", type=Path, help=f"{TOOL_CONFIG_HELP}: the models to compute catalogs with, mqtt.* for announcements")
    p.add_argument("--announce", action=argparse.BooleanOptionalAction, default=True,
                   help="announce versions on MQTT (default: on, when the config enables mqtt)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--s3-bucket", help="publish to this S3-compatible bucket instead of <root>/public (boto3; AWS env/profile)")
    p.add_argument("--s3-prefix", default="", help="key prefix inside the bucket")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from sync_agent.commands import serve

    return serve(args, config_or_defaults(args.config))

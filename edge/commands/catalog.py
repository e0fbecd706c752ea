"""`shelfid catalog build|keygen|publish|serve|references|review`: a catalog from product photos, signed bundles, the central
server, a device's field references and the server's review queue of them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.commands.common import DEVICE_CONFIG_HELP, TOOL_CONFIG_HELP, config_or_defaults, device_config


def add_parsers(sub: argparse._SubParsersAction) -> None:
    catalog = sub.add_parser("catalog", help="build, publish and serve catalogs")
    actions = catalog.add_subparsers(dest="catalog_command", metavar="ACTION", required=True)
    for add in (_add_build, _add_keygen, _add_publish, _add_serve, _add_references, _add_review):
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


def _add_references(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser("references", help="this device's field references (crops confirmed on the installer's page)")
    p.add_argument("--config", type=Path, help=f"{DEVICE_CONFIG_HELP}: device.data_dir")
    p.set_defaults(func=_references, references_command="list", json=False)
    which = p.add_subparsers(dest="references_command", metavar="ACTION")
    listing = which.add_parser("list", help="every reference: state (pending, uploaded, refused), product, track, time")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    remove = which.add_parser("remove", help="take references off the device (a pending one is then never uploaded)")
    remove.add_argument("reference_ids", nargs="+", metavar="ID")
    for child in (listing, remove):
        child.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=f"{DEVICE_CONFIG_HELP}: device.data_dir")


def _references(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from sync_agent.review import device_references, reference_line, remove_references

    config = device_config(args.config)
    if args.references_command == "remove":
        for reference in remove_references(config, args.reference_ids):
            note = " (the catalog server has it: a manager reviews it there)" if reference.state == "uploaded" else ""
            print(f"removed {reference.reference_id} ({reference.product_id}, {reference.state}){note}")
        return 0
    references = device_references(config)
    for reference in references:
        print(json.dumps(asdict(reference), ensure_ascii=False) if args.json else reference_line(reference))
    if not references:
        print(f"no field references in {config.device.data_dir}/references", file=sys.stderr)
    return 0


def _add_review(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser("review", help="the catalog server's review queue of field references (a catalog manager's)")
    which = p.add_subparsers(dest="review_command", metavar="ACTION", required=True)
    listing = which.add_parser("list", help="uploads waiting for review (pending, disputed), or --state")
    listing.add_argument("--state", default="open", choices=["open", "pending", "disputed", "accepted", "rejected", "all"])
    listing.add_argument("--limit", type=int, default=100, help="at most this many (1 to 1000)")
    listing.add_argument("--json", action="store_true", help="the server's JSON")
    show = which.add_parser("show", help="one upload: provenance, the check's evidence; --crop saves its crop")
    show.add_argument("reference_id", metavar="ID")
    show.add_argument("--crop", type=Path, metavar="OUT.jpg", help="write the crop here")
    accept = which.add_parser("accept", help="the crop becomes an image of its product; the next publish sends it to devices")
    accept.add_argument("reference_id", metavar="ID")
    accept.add_argument("--override", action="store_true", help="accept a disputed upload all the same (audited)")
    accept.add_argument("--note", default="", help="why, for the audit trail")
    reject = which.add_parser("reject", help="refuse an upload, with the reason")
    reject.add_argument("reference_id", metavar="ID")
    reject.add_argument("--reason", required=True, help="why (kept with it and in the audit trail)")
    for child in (listing, show, accept, reject):
        child.add_argument("--server", required=True, help="the catalog server's URL, e.g. http://127.0.0.1:8080")
        child.add_argument("--catalog", required=True, help="catalog id")
        child.add_argument("--token-file", type=Path, help="a write token for the catalog, or the admin token (else the "
                                                           "credential 'server-token' or $SHELFID_SERVER_TOKEN)")
        child.set_defaults(func=_review)


def _review(args: argparse.Namespace) -> int:
    from sync_agent.commands import server_token
    from sync_agent.review import ReviewClient, review_line

    client = ReviewClient(args.server, args.catalog, server_token(args.token_file))
    command = args.review_command
    if command == "list":
        rows = client.list(args.state, args.limit)
        print(json.dumps(rows, indent=1, ensure_ascii=False) if args.json else "\n".join(review_line(r) for r in rows)
              or f"nothing {args.state} in catalog {args.catalog}")
        return 0
    if command == "show":
        row = client.show(args.reference_id)
        if args.crop:
            print(f"crop: {args.crop} ({client.crop(args.reference_id, args.crop)} bytes)", file=sys.stderr)
    elif command == "accept":
        row = client.accept(args.reference_id, args.override, args.note)
    else:
        row = client.reject(args.reference_id, args.reason)
    print(json.dumps(row, indent=1, ensure_ascii=False))
    return 0

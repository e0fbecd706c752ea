"""`shelfid sync`: the device's catalog sync agent (sync_agent/ does the work)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.commands.common import DEVICE_CONFIG_HELP, device_config
from edge.logs import setup_from_config


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sync", help="the device's catalog sync agent")
    p.add_argument("--config", type=Path, help=f"{DEVICE_CONFIG_HELP}: sync.*, device.data_dir, mqtt.* for announcements")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one sync, then exit (systemd timer)")
    mode.add_argument("--rollback", action="store_true", help="switch to the previous kept version")
    p.set_defaults(func=_sync)


def _sync(args: argparse.Namespace) -> int:
    from sync_agent.commands import sync

    config = device_config(args.config)
    setup_from_config(args.log_level, config.logging.level, config.logging.format)
    return sync(args, config)

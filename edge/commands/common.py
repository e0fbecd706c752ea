"""What several command groups share: where the config comes from, the help texts that say so, list arguments."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from edge.core.config import DEFAULT_CONFIG_PATH, Config
from edge.core.errors import ConfigFileError

CONFIG_ENV = "SHELFID_CONFIG"
DEVICE_CONFIG_HELP = f"config file (default ${CONFIG_ENV}, else {DEFAULT_CONFIG_PATH})"
TOOL_CONFIG_HELP = f"config file (default ${CONFIG_ENV}, else {DEFAULT_CONFIG_PATH}; built-in defaults when neither exists)"


def config_path(explicit: Path | None) -> Path:
    return explicit or Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def device_config(path: Path | None) -> Config:
    """A device's config: --config, $SHELFID_CONFIG or the default path; none of them is an error."""
    from edge.core.config_file import load_config

    resolved = config_path(path)
    if path is None and not resolved.exists():
        raise ConfigFileError(f"{resolved}: no such config file — pass --config FILE or set ${CONFIG_ENV}")
    return load_config(resolved)


def config_or_defaults(path: Path | None) -> Config:
    """The config when one is named or installed, else the built-in defaults (tools that work on a laptop)."""
    from edge.core.config_file import load_config

    resolved = config_path(path)
    if path is None and CONFIG_ENV not in os.environ and not resolved.exists():
        return Config()
    return load_config(resolved)


def ints(text: str) -> list[int]:
    """An argparse type: '1,8,32' -> [1, 8, 32]."""
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None

"""Write the zones an installer drew into the config file: validated whole first, a backup kept, replaced atomically.

Only the top-level `zones:` block of the file is rewritten (appended when there is none); every other line, comments
included, stays as the installer wrote it. The new text is validated as the daemon will read it at its next start
(config_from_text) and the planogram's product ids against the catalog in use, before anything is written; then the
old file goes to `<file>.bak` and the new one replaces it (temp file, fsync, rename: models.safe_write). A bad
request leaves both files as they were.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Collection
from pathlib import Path

import yaml

from edge.core.config import Config, ZonesConfig
from edge.core.config_file import config_from_text
from edge.core.errors import ConfigError, ConfigFileError
from models.safe_write import write_text_atomic


def unknown_products(zones: ZonesConfig, product_ids: Collection[str]) -> list[str]:
    """One problem line per planogram product id the catalog does not have."""
    known = ", ".join(sorted(product_ids)[:20]) + (" …" if len(product_ids) > 20 else "")
    return [f"zones.areas.{name}.expected.{product_id}: unknown product — the catalog in use has: {known or 'no products'}"
            for name, area in zones.areas.items() for product_id in area.expected if product_id not in product_ids]


def replace_block(text: str, key: str, block: str) -> str:
    """`text` with its top-level `key:` block (block-style YAML) replaced by `block`, or `block` appended."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(rf"{re.escape(key)}\s*:", line)), None)
    if start is None:
        return (text.rstrip("\n") + "\n\n" if text.strip() else "") + block
    end = next((j for j in range(start + 1, len(lines)) if lines[j][:1] not in ("", " ", "\t", "#", "\n", "\r")), len(lines))
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
        end -= 1  # blank lines and comments just above the next section belong to it
    rest = lines[end:]
    return "".join(lines[:start]) + block + ("\n" if rest else "") + "".join(rest)


def new_text(text: str, areas: object, path: Path) -> str:
    """The config file's text with `zones.areas` set to `areas` (other `zones` keys kept)."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{path}: the config file is not valid YAML now ({exc}); fix it by hand before saving zones") from None
    if not isinstance(data, dict) or not isinstance(data.get("zones") or {}, dict):
        raise ConfigFileError(f"{path}: the config file is not a mapping of sections with a mapping under zones:, fix it by hand")
    zones = {**(data.get("zones") or {}), "areas": areas}
    if root.flow_style:  # the whole file is one {…} mapping: no comments to keep, write it out block-style
        return yaml.safe_dump({**data, "zones": zones}, sort_keys=False, allow_unicode=True)
    result = replace_block(text, "zones", yaml.safe_dump({"zones": zones}, sort_keys=False, default_flow_style=None,
                                                         allow_unicode=True, width=120))
    if (yaml.safe_load(result) or {}).get("zones") != zones:  # the text's layout fooled replace_block: write nothing
        raise ConfigFileError(f"{path}: could not place the zones: section among the file's lines; edit it by hand")
    return result


def save_zone_areas(path: Path | str, areas: object, product_ids: Collection[str]) -> Config:
    """Set `zones.areas` in the config file at `path` to `areas` (as parsed from JSON) and return the new config.

    ConfigError (one line per problem) when the result would not be valid or names a product `product_ids` does not
    have; ConfigFileError when the file cannot be read, parsed or written. Either way the file is untouched.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        mode = stat.S_IMODE(path.stat().st_mode)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"{path}: cannot read the config file: {exc}") from None
    updated = new_text(text, areas, path)
    config = config_from_text(updated, path)
    if problems := unknown_products(config.zones, product_ids):
        raise ConfigError(str(path), problems)
    backup = path.with_name(path.name + ".bak")
    try:
        write_text_atomic(backup, text, mode=mode)
        write_text_atomic(path, updated, mode=mode)
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot write the config file or its backup {backup.name}: {exc.strerror or exc} "
                              "(the daemon needs write access to the file's folder to save zones from the page)") from None
    return config

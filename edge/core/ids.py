"""The ids people choose that become file names, URL path parts and MQTT topic levels: one home for their patterns.

Letters and digits first, then also '.', '_' and '-': no '/', no '..' on its own, nothing a shell or a topic
filter reads specially. Check a string with the compiled patterns' `fullmatch` (with `match` and `$`, "a\\n" would
pass); the anchored strings are for pydantic fields (whose regex has no such `$`) and must stay what
sync_agent/manifest.schema.json says for a catalog id (a test compares them).
"""

from __future__ import annotations

import re

PRODUCT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
CATALOG_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"  # the config caps its length (64) with its own message

PRODUCT_ID = re.compile(PRODUCT_ID_PATTERN)
CATALOG_ID = re.compile(CATALOG_ID_PATTERN)

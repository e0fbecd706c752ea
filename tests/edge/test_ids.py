"""The id patterns have one home (edge.core.ids); everything that checks an id takes it from there."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, Field, ValidationError

from edge.core.config import DeviceConfig, SyncConfig
from edge.core.ids import CATALOG_ID, CATALOG_ID_PATTERN, DEVICE_ID_PATTERN, PRODUCT_ID, PRODUCT_ID_PATTERN
from sync_agent.bundle import SCHEMA_FILE
from sync_agent.server.catalogs import NewCatalog
from sync_agent.server.tokens import NewToken

HOSTILE = ("a\n", "a/b", "../a", "..", "", ".a", "-a", "a b", "a#", "ä")


def test_the_manifest_schema_states_the_same_catalog_id_pattern():
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["properties"]["catalog_id"]["pattern"] == CATALOG_ID_PATTERN


@pytest.mark.parametrize("model, field, pattern", [(SyncConfig, "catalog_id", CATALOG_ID_PATTERN), (NewCatalog, "catalog_id", CATALOG_ID_PATTERN),
                                                   (NewToken, "catalog_id", CATALOG_ID_PATTERN), (DeviceConfig, "id", DEVICE_ID_PATTERN)])
def test_config_and_server_fields_take_their_pattern_from_edge_core_ids(model, field, pattern):
    assert model.model_json_schema()["properties"][field]["pattern"] == pattern


@pytest.mark.parametrize("pattern, compiled, longest", [(PRODUCT_ID_PATTERN, PRODUCT_ID, 128), (CATALOG_ID_PATTERN, CATALOG_ID, 64)])
def test_python_and_pydantic_read_a_pattern_alike(pattern, compiled, longest):
    class Named(BaseModel):
        name: str = Field(pattern=pattern)

    for good in ("a", "A0._-z", "9" * longest):
        assert compiled.fullmatch(good) and Named(name=good)
    for bad in (*HOSTILE, "a" * (longest + 1)):
        assert compiled.fullmatch(bad) is None
        with pytest.raises(ValidationError):
            Named(name=bad)

"""Property-based fuzzing (Hypothesis) of what a device accepts from outside: a config file, an image file, an
MQTT announcement, a catalog manifest and its expiry. Each input either works or ends in the module's own clear
error — never another exception — and leaves nothing half-written. The example counts are bounded for CI;
`HYPOTHESIS_PROFILE=long` runs 5,000 each by hand (profiles in tests/conftest.py).
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from edge.core.config import Config
from edge.core.config_file import load_config
from edge.core.errors import ConfigError, ImageError, ShelfIDError
from edge.core.images import read_image
from edge.reporting.announcements import parse_announcement
from sync_agent.bundle import parse_manifest
from sync_agent.errors import BundleError, SyncError
from sync_agent.trust import freshness

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                           max_leaves=20)
SECTIONS = ["device", "camera", "models", "verifier", "index", "mqtt", "sync", "web", "tracker"]


@given(st.binary(max_size=2048))
def test_any_announcement_bytes_give_a_version_or_a_value_error(payload):
    try:
        version = parse_announcement(payload)
    except ValueError:
        return
    assert type(version) is int and version >= 1


@given(st.dictionaries(st.sampled_from(["version", "catalog_id", "x"]), json_values, max_size=3))
def test_any_announcement_object_gives_a_version_or_a_value_error(doc):
    try:
        version = parse_announcement(json.dumps(doc).encode())
    except ValueError:
        return
    assert version == doc["version"]


@given(st.binary(max_size=4096))
def test_any_manifest_bytes_parse_or_are_a_bundle_error(data):
    try:
        parse_manifest(data)
    except BundleError:
        pass


@given(st.dictionaries(st.sampled_from(["schema", "catalog_id", "version", "created_at", "expires", "embedder", "verifier",
                                        "shards", "blobs", "extra"]), json_values, max_size=10))
def test_any_manifest_object_parses_or_is_a_bundle_error(doc):
    try:
        manifest = parse_manifest(json.dumps(doc).encode())
    except BundleError:
        return
    assert manifest["catalog_id"] == doc["catalog_id"]


@given(st.text(max_size=40))
def test_any_expiry_is_fresh_stale_or_a_clear_refusal(expires):
    try:
        learned = freshness(expires, datetime.now(timezone.utc))
    except SyncError:  # BundleError for a time it cannot read
        return
    assert learned["fresh_until"] == expires and learned["stale"] in (True, False)


@given(st.dictionaries(st.sampled_from(SECTIONS), json_values, max_size=4))
def test_any_yaml_config_loads_or_is_a_config_error_with_a_line(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_text(json.dumps(doc))  # JSON is YAML
    try:
        assert isinstance(load_config(path), Config)
    except ConfigError as exc:
        assert str(exc)
    except ShelfIDError as exc:  # ConfigFileError: unreadable / not YAML
        assert str(path) in str(exc)


@given(st.text(max_size=300))
def test_any_text_as_config_loads_or_is_a_clear_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_bytes(text.encode())
    try:
        load_config(path)
    except ShelfIDError as exc:
        assert str(path) in str(exc)


@given(st.sampled_from(["png", "jpeg"]), st.integers(0, 400), st.binary(max_size=64))
def test_a_cut_or_corrupted_image_reads_or_is_an_image_error(tmp_path_factory, kind, cut, noise):
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(cut).integers(0, 255, (24, 32, 3), np.uint8)).save(out, kind.upper())
    data = out.getvalue()
    path = tmp_path_factory.mktemp("img") / f"x.{kind}"
    path.write_bytes(data[: max(cut, 1)] + noise if cut < len(data) else data + noise)
    try:
        image = read_image(path)
    except ImageError as exc:
        assert str(path) in str(exc)
        return
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8


@given(st.binary(max_size=512))
def test_any_bytes_as_an_image_read_or_are_an_image_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("img") / "x.jpg"
    path.write_bytes(data)
    try:
        read_image(path)
    except ImageError:
        pass

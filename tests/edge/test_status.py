"""The daemon's health document, assembled in edge.daemon.status, is what schemas/status.schema.json describes."""

from __future__ import annotations

import json
from types import SimpleNamespace

import jsonschema

from edge.core.config import Config
from edge.daemon.pipeline import Stats
from edge.daemon.status import frame_stats, page_status, sync_stats
from edge.reporting.sinks import LocalSink
from edge.web.live import LiveState
from tests.conftest import REPO

SCHEMA = json.loads((REPO / "schemas" / "status.schema.json").read_text())


def test_the_page_status_of_a_device_that_syncs_is_valid_and_carries_the_stats(tmp_path):
    (tmp_path / "key.pub").write_text("not read here")
    config = Config.model_validate({"device": {"data_dir": str(tmp_path)}, "sync": {"server_url": "https://cdn.example",
                                                                                         "public_key_file": str(tmp_path / "key.pub")}})
    stats = Stats(frames=30, identified=2)
    stats.record({"detect": 12.0})
    grabber = SimpleNamespace(grabbed=31, dropped=1, status="ok", reconnects=0)
    message = frame_stats(stats, grabber, 4, tracks=3, identify_queue=1) | {"catalog_id": "shelf"} | sync_stats(config)
    status = page_status(config, message, LocalSink(), LiveState())
    jsonschema.validate(status, SCHEMA)
    assert status["frames"] == 30 and status["stage_ms"]["detect"] == {"p50": 12.0, "p95": 12.0}
    assert status["sync"]["active_version"] is None and status["sync_age_s"] is None and status["camera"] == "ok"

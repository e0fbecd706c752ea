"""`shelfid bench pipeline`: both loops run on a real (short) video and report what the issue asks for."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def test_bench_pipeline_json_on_a_short_video(short_video):
    video = short_video
    run = subprocess.run([sys.executable, "-m", "edge.cli", "bench", "pipeline", "--video", str(video), "--compare", "--json"],
                         capture_output=True, text=True, cwd=REPO, timeout=600)
    assert run.returncode == 0, run.stderr[-1500:]
    pipeline, inline, naive = json.loads(run.stdout)
    for row in (pipeline, inline, naive):
        assert row["frames"] == 6 and row["dropped_frames"] == 0 and row["fps"] > 0 and row["rss_mb"] > 0
        assert set(row["identify_latency_ms"]) == {"p50", "p95"}
    assert [r["mode"] for r in (pipeline, inline, naive)] == ["pipeline", "inline", "naive"]
    assert naive["identified"] >= inline["identified"]  # the naive loop re-identifies the same products every frame
    assert set(inline["stage_ms"]) == {"detect", "embed", "search", "verify"}

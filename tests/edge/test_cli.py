"""The `shelfid` command: help everywhere, exit codes for check-config, errors as messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import build_parser, main, subcommand_parsers

REPO = Path(__file__).resolve().parents[2]


def shelfid(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, cwd=REPO)


def test_top_level_help_lists_subcommands():
    run = shelfid("--help")
    assert run.returncode == 0
    for name in ("check-config", "models", "bench"):
        assert name in run.stdout


@pytest.mark.parametrize("name", sorted(subcommand_parsers()))
def test_every_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*name.split(), "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: shelfid " + name)


def test_every_subcommand_has_a_help_line():
    parsers = {"": build_parser(), **subcommand_parsers()}
    checked = 0
    for parser in parsers.values():
        for action in parser._actions:
            for choice in getattr(action, "_choices_actions", []):
                assert choice.help, f"{parser.prog} {choice.dest} has no help"
                checked += 1
    assert checked == len(parsers) - 1


def test_check_config_exit_codes(tmp_path):
    assert shelfid("check-config", "config.example.yaml").returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("camera:\n  fps: fast\n")
    run = shelfid("check-config", str(bad))
    assert run.returncode == 1 and "camera.fps: 'fast' —" in run.stderr
    notyaml = tmp_path / "notyaml.yaml"
    notyaml.write_text("a: [\n")
    assert shelfid("check-config", str(notyaml)).returncode == 2
    assert shelfid("check-config", str(tmp_path / "missing.yaml")).returncode == 2


def test_check_config_prints_one_line_summary():
    run = shelfid("check-config", "config.example.yaml")
    assert run.stdout.count("\n") == 1 and "valid — device shelf-001" in run.stdout


def test_model_error_becomes_message_and_exit_1(tmp_path):
    run = shelfid("models", "info", str(tmp_path / "nope.onnx"))
    assert run.returncode == 1
    assert run.stderr.strip().endswith("nope.onnx: no such model file")
    assert "Traceback" not in run.stderr


def test_build_engine_without_tensorrt_says_so(tmp_path, bundled_detector_path):
    run = shelfid("models", "build-engine", str(bundled_detector_path), "--fp16", "--cache-dir", str(tmp_path))
    assert run.returncode == 1
    assert "TensorRT is not installed here" in run.stderr
    assert not any(tmp_path.iterdir())


def test_bench_pipeline_without_json_prints_a_markdown_table(short_video):
    video = short_video
    run = shelfid("bench", "pipeline", "--video", str(video))
    assert run.returncode == 0, run.stderr[-1500:]
    header, rule, row = run.stdout.splitlines()
    assert header.startswith("| mode | frames | dropped | processed FPS |") and rule == "|---|---|---|---|---|---|---|---|---|"
    assert row.startswith("| pipeline | 6 | 0 | ") and row.count("|") == 10


def test_a_large_photo_is_detected_in_tiles_by_default_and_names_each_facing_once(tmp_path, sample_catalog_dir, shelf_frames, capsys):
    """A phone-sized still whose shelf fills a quarter of it: detected at its own scale without being asked (the one
    pass at the detector's input cannot see its packs), each named facing once; --no-tiles: the whole image at once."""
    import json
    from types import SimpleNamespace

    import cv2
    import numpy as np

    from edge.core.identify import Detected, same_facing

    photo = np.full((1440, 2560, 3), 200, np.uint8)
    photo[540:900, 960:1600] = cv2.resize(shelf_frames[1], (640, 360), interpolation=cv2.INTER_AREA)
    path = tmp_path / "photo.jpg"
    cv2.imwrite(str(path), photo)
    runs, notes = {}, {}
    for flags in ([str(path)], ["--no-tiles"]):  # by default, the photo twice: the note about its scale comes once
        assert main(["detect", "--json", "--catalog", str(sample_catalog_dir), *flags, str(path)]) == 0
        out, notes[flags[0]] = capsys.readouterr()
        runs[flags[0]] = json.loads(out.splitlines()[0])["detections"]
    tiled, whole = runs[str(path)], runs["--no-tiles"]
    assert notes[str(path)].count("in tiles") == 1 and "8.0 times the detector's 320 px input" in notes[str(path)]
    assert "tiles" not in notes["--no-tiles"]
    assert len(tiled) > len(whole) + 3
    named = [Detected(tuple(d["bbox"]), SimpleNamespace(product=SimpleNamespace(product_id=d["product"]["id"])))
             for d in tiled if d["status"] == "identified"]
    assert named and not any(same_facing(a, b) for i, a in enumerate(named) for b in named[i + 1:])


def test_detect_asks_the_configured_second_opinion_about_each_box_left_unknown(tmp_path, sample_catalog_dir, shelf_frames, capsys):
    """verifier.second_opinion in a still, as the daemon asks a track: a frame blurred past what SIFT matches (frame 150,
    Gaussian sigma 4) gets more boxes named with ALIKED + LightGlue, each on a bottle of that product (our labels)."""
    import json

    import cv2

    from tools.evaluate_video import read_labels, scaled

    frame = shelf_frames[1]  # samples/shelf/frame_0150.jpg
    labels = scaled(read_labels()[150], frame)
    blurred = tmp_path / "blurred.jpg"
    cv2.imwrite(str(blurred), cv2.GaussianBlur(frame, (0, 0), 4))
    config = tmp_path / "second.yaml"
    config.write_text("verifier:\n  second_opinion: aliked-lightglue\n  device: cpu\n")
    runs = {}
    for name, flags in (("first", []), ("second", ["--config", str(config)])):
        assert main(["detect", "--json", "--catalog", str(sample_catalog_dir), *flags, str(blurred)]) == 0
        captured = capsys.readouterr()
        assert "--tiles" not in captured.err  # a camera's 1280x720 frame is not told to tile
        out = json.loads(captured.out)
        runs[name] = {tuple(d["bbox"]): d["product"]["id"] for d in out["detections"] if d["status"] == "identified"}
    assert "second_opinion" in out["ms"]
    assert len(runs["second"]) > len(runs["first"]), runs
    assert all(runs["second"][box] == product for box, product in runs["first"].items())  # the first's names stand

    def covered(box, label):  # share of the box inside the label's
        w = min(box[2], label.box[2]) - max(box[0], label.box[0])
        h = min(box[3], label.box[3]) - max(box[1], label.box[1])
        return max(w, 0) * max(h, 0) / ((box[2] - box[0]) * (box[3] - box[1]))

    for box, product in runs["second"].items():
        label = max(labels, key=lambda lab: covered(box, lab))
        assert covered(box, label) >= 0.7 and label.product == product, (box, product, label)

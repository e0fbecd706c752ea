"""Shared fixtures: real sample images, the bundled detector, small models made here."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from filelock import FileLock
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples" / "shelf"
# ../shared is beside the checkout on developer machines and in CI; tests that need
# the upstream checkpoint say so and skip alone where it is absent.
SHARED = REPO.parent / "shared"
YOLOV5N_PT = SHARED / "models" / "yolov5n-coco.pt"

needs_upstream_yolov5 = pytest.mark.skipif(not YOLOV5N_PT.is_file(), reason=f"upstream checkpoint not at {YOLOV5N_PT}")

# property-based fuzzing (tests/test_fuzz.py, tests/sync/test_server_fuzz.py): bounded in CI, long by hand
# (HYPOTHESIS_PROFILE=long); the fixtures a property uses hold no per-example state
settings.register_profile("ci", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.register_profile("long", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which files each test under its group; after
# tests/systemd/conftest.py's (a later conftest's tryfirst hook runs first), whose group stays
def pytest_collection_modifyitems(config, items):
    """Tests that share a module-scoped fixture run on one worker (make test runs `--dist loadgroup`): else every
    worker that gets one of them builds it again (the shelf video's evaluation ran twice, 72 s each). The slowest
    tests are handed out first (STARTED_FIRST)."""
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        info = getattr(item, "_fixtureinfo", None)
        if info and any(d.scope == "module" for defs in info.name2fixturedefs.values() for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    items.sort(key=started_first)  # stable: the same order on every worker


def started_first(item) -> int:
    return next((n for n, prefix in enumerate(STARTED_FIRST) if item.nodeid.startswith(prefix)), len(STARTED_FIRST))


# The tests that take 30 s or more under `make test`, slowest first (2-core VM, 2026-12-07: 125 s down to 30 s). pytest-xdist hands out
# work in collection order, and one of these begun in the suite's last minute kept a worker busy after the others were
# done (8:24-8:47 in all, while the suite's CPU time on two cores is 7:30): started first, they overlap the rest.
# Not the enrolment end to end test (40-200 s): a daemon on a looping video taught from a browser, it once did not
# name the taught product within 120 s when begun beside the four heaviest (1 run in 5); it runs where it ran before.
STARTED_FIRST = ("tests/sync/test_fault_sync.py", "tests/test_video_benchmark.py",
                 "tests/systemd/", "tests/power/test_fault_power.py", "tests/test_zones_e2e.py", "tests/models/test_gpu_check.py",
                 "tests/edge/test_stored_index.py", "tests/models/test_embedder_training.py", "tests/models/test_matcher_export.py",
                 "tests/models/test_detector_training.py", "tests/test_accuracy_floor.py",
                 "tests/sync/test_detect_api.py::test_a_server_configured_with_a_second_opinion")


def once_per_run(tmp_path_factory, name: str, make: Callable[[Path], Path]) -> Path:
    """What `make(folder)` returns, made once per test run: under pytest-xdist each worker is a session of its own, so
    a session fixture would be made once per worker; here the first worker makes it and the others wait and reuse it.
    What it returns is shared: tests only read it."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    folder = root / f"once-{name}"
    with FileLock(f"{folder}.lock"):
        made = folder / ".made"
        if not made.is_file():  # a worker that failed half-way leaves no .made: start again
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            made.write_text(str(make(folder).relative_to(folder)))
        return folder / made.read_text()


@pytest.fixture(scope="session")
def shelf_frames() -> list[np.ndarray]:
    frames = [cv2.imread(str(p)) for p in sorted(SAMPLES.glob("*.jpg"))]
    assert frames and all(f is not None for f in frames)
    return frames


@pytest.fixture(scope="session")
def bundled_detector_path() -> Path:
    from models.runtime import BUNDLED_DETECTOR

    return BUNDLED_DETECTOR


@pytest.fixture(scope="session")
def coco_detector_path() -> Path:
    """The upstream COCO YOLOv5n as imported (80 classes, bottle/cup/wine glass/bowl/vase recorded as products)."""
    from models.runtime import COCO_DETECTOR

    return COCO_DETECTOR


@pytest.fixture(scope="session")
def sample_catalog_dir(tmp_path_factory) -> Path:
    """samples/shelf-catalog built once with the default models (id shelf, v1); tests only read it."""
    from edge.bench.pipeline import sample_catalog
    from edge.core.config import Config

    return once_per_run(tmp_path_factory, "sample-catalog", lambda folder: sample_catalog(Config(), folder / "catalog", "shelf"))


@pytest.fixture(scope="session")
def small_embedder(tmp_path_factory) -> Path:
    """A seeded, untrained ResNet34 embedder at 96 px, as ONNX with its .pt beside it."""
    from models.export import export_embedder

    def make(folder: Path) -> Path:
        export_embedder(folder / "embedder.onnx", input_size=96, seed=1, save_torch=True)
        return folder / "embedder.onnx"

    return once_per_run(tmp_path_factory, "small-embedder", make)


@pytest.fixture(scope="session")
def upstream_yolov5n(tmp_path_factory) -> Path:
    """The official YOLOv5n converted by our importer, with our torch checkpoint beside it."""
    if not YOLOV5N_PT.is_file():
        pytest.skip(f"upstream checkpoint not at {YOLOV5N_PT}")
    from models.export import import_yolov5

    def make(folder: Path) -> Path:
        import_yolov5(YOLOV5N_PT, folder / "yolov5n.onnx", 640, save_torch=True)
        return folder / "yolov5n.onnx"

    return once_per_run(tmp_path_factory, "yolov5n", make)


@pytest.fixture
def short_video(tmp_path) -> Path:
    """Six 640x360 frames of the sample shelf at 15 fps (MJPG): a video for the pipeline benchmark's CLI."""
    video = tmp_path / "short.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 15, (640, 360))
    for frame in sorted(SAMPLES.glob("*.jpg"))[:2]:
        for _ in range(3):
            writer.write(cv2.resize(cv2.imread(str(frame)), (640, 360)))
    writer.release()
    return video

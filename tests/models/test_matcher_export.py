"""ALIKED + LightGlue exported to ONNX (`shelfid models export-matcher`) against kornia on PyTorch: the same keypoints,
descriptors and matches on real images of several sizes; the verifier that runs them needs no PyTorch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edge.cli import main as shelfid
from edge.core.config import VerifierConfig
from edge.core.config_file import load_config
from edge.core.errors import ConfigError, ShelfIDError
from edge.core.second_opinion import SecondOpinion
from edge.core.verifier import open_verifier
from edge.core.verifier.lightglue import LightGlueVerifier
from edge.core.verifier.lightglue_onnx import FILES, OnnxLightGlueVerifier
from edge.doctor import check_models
from tests.conftest import REPO, once_per_run

KEYPOINTS = 512
GROCERY = REPO / "tests" / "data" / "grocery-mini"
QUERIES = REPO / "tests" / "data" / "queries"
LIMAO_REFERENCE = REPO / "samples" / "shelf-catalog" / "cha-mate-limao" / "frame0000.jpg"  # another frame's crop


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> Path:
    def export(folder: Path) -> Path:
        assert shelfid(["models", "export-matcher", "--out", str(folder / "matcher"), "--max-keypoints", str(KEYPOINTS)]) == 0
        return folder / "matcher"
    return once_per_run(tmp_path_factory, "matcher-onnx", export)


def both(exported: Path, **settings) -> tuple[LightGlueVerifier, OnnxLightGlueVerifier]:
    config = VerifierConfig(kind="aliked-lightglue", device="cpu", max_keypoints=KEYPOINTS, **settings)
    return LightGlueVerifier(config), OnnxLightGlueVerifier(config.model_copy(update={"matcher_onnx": exported}))


def photo(name: str) -> np.ndarray:
    found = sorted(GROCERY.rglob(name))
    assert found, name
    return cv2.imread(str(found[0]))


@pytest.mark.parametrize("input_size", [512, 500])  # 500: padded on both axes, unevenly
def test_the_exported_aliked_gives_kornias_keypoints_and_descriptors_at_any_image_size(exported, input_size):
    kornia, onnx = both(exported, input_size=input_size)
    images = [photo("Bravo-Apple-Juice_001.jpg"), cv2.imread(str(QUERIES / "cha-mate-limao.jpg"))]
    images.append(images[0][: images[0].shape[0] // 3])  # a wide sliver of a shelf photo
    sizes = set()
    for image in images:
        want, got = kornia.features(image), onnx.features(image)
        assert got.image_size == want.image_size
        sizes.add(got.image_size)
        # the same points (the order of equal scores may differ), each with the same descriptor
        distance = np.linalg.norm(got.keypoints[:, None] - want.keypoints[None], axis=2)
        nearest = distance.argmin(axis=1)
        same = distance.min(axis=1) < 0.01
        assert same.mean() >= 0.99 and abs(len(got.keypoints) - len(want.keypoints)) <= 2
        assert np.abs(got.descriptors[same] - want.descriptors[nearest[same]]).max() < 1e-4
        assert np.abs(got.scores[same] - want.scores[nearest[same]]).max() < 1e-4
    assert len(sizes) == 3
    # a plain image (512 x 256 once resized: no padding) has no local maxima at all: no keypoints, as kornia, no error
    plain = np.full((200, 100, 3), 128, np.uint8)
    assert len(kornia.features(plain).keypoints) == len(onnx.features(plain).keypoints) == 0


def test_the_exported_lightglue_gives_the_pytorch_verifiers_matches_stopping_early_and_dropping_points_as_it(exported):
    kornia, onnx = both(exported)
    queries = [kornia.features(image) for image in (photo("Bravo-Apple-Juice_001.jpg"), photo("Arla-Medium-Fat-Milk_001.jpg"),
                                                     cv2.imread(str(QUERIES / "cha-mate-limao.jpg")),
                                                     cv2.imread(str(QUERIES / "matte-leao.jpg")))]
    references = [kornia.features(photo("Bravo-Apple-Juice_Iconic.jpg")), kornia.features(cv2.imread(str(LIMAO_REFERENCE)))]
    stopped_or_pruned = 0
    for query in queries:
        for reference in references:
            with torch.inference_mode():
                want = kornia.matcher({"image0": side(query), "image1": side(reference)})
            np.testing.assert_array_equal(onnx.pairs(query, reference), want["matches"][0].numpy())
            stopped_or_pruned += want["stop"] < 9 or bool((want["prune0"] < 9).any())
    assert stopped_or_pruned >= 4  # the loop's early stop and pruning were exercised, not only all nine layers
    reference = onnx.features(cv2.imread(str(LIMAO_REFERENCE)))
    right = onnx.match(onnx.features(cv2.imread(str(QUERIES / "cha-mate-limao.jpg"))), reference)
    wrong = onnx.match(onnx.features(cv2.imread(str(QUERIES / "matte-leao.jpg"))), reference)
    assert right.inliers >= 100 and right.spread > 0.5  # the same bottle in another frame: over most of its face
    assert wrong.inliers < 40 and wrong.spread < 0.1  # the same brand's other drink: the logo at most


def side(features) -> dict:
    return {"keypoints": torch.from_numpy(features.keypoints)[None], "descriptors": torch.from_numpy(features.descriptors)[None],
            "image_size": torch.tensor([features.image_size], dtype=torch.float32)}


def test_the_second_opinion_runs_on_the_export_when_the_config_names_it(exported, tmp_path):
    from edge.core.assembly import Models, identifier_for, open_second_opinion
    from edge.core.catalog import load_catalog
    from edge.core.catalog_build import build_catalog

    path = tmp_path / "config.yaml"
    path.write_text(f"verifier:\n  second_opinion: aliked-lightglue\n  max_keypoints: {KEYPOINTS}\n  matcher_onnx: {exported}\n")
    config = load_config(path)
    models = Models.open(config)
    assert isinstance(models.second, OnnxLightGlueVerifier) and models.second.id == f"aliked-lightglue-n{KEYPOINTS}-s512"
    assert open_second_opinion(config.verifier, "aliked-lightglue").id == models.second.id
    check = check_models(config)  # the doctor says it loaded, and on what: how an operator sees it is on
    assert check.state == "ok" and f"second opinion aliked-lightglue-n{KEYPOINTS}-s512 on ONNX Runtime;" in check.detail, check
    build_catalog(REPO / "samples" / "shelf-catalog", tmp_path / "catalog", models.embedder, models.verifier, models.detector, "shelf")
    opinion = SecondOpinion(identifier_for(config, load_catalog(tmp_path / "catalog"), models), models.second)
    named = opinion.identify(cv2.imread(str(QUERIES / "cha-mate-limao.jpg")))
    assert named.status == "identified" and named.product.product_id == "cha-mate-limao" and named.clear
    assert opinion.identify(cv2.imread(str(QUERIES / "matte-leao.jpg"))).status == "unknown"


def test_the_daemons_second_opinion_runs_on_the_export_where_pytorch_is_not_installed(exported, tmp_path):
    """A device's Python has no PyTorch (JetPack 6's lock has none): with verifier.matcher_onnx the daemon's second
    opinion (its own thread, as `shelfid run` starts it) opens, builds nothing from torch and names the bottle."""
    config = tmp_path / "config.yaml"
    config.write_text(f"verifier:\n  second_opinion: aliked-lightglue\n  max_keypoints: {KEYPOINTS}\n  matcher_onnx: {exported}\n")
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any import of torch now fails
        import cv2
        from concurrent.futures import wait
        from edge.core.assembly import Models, identifier_for
        from edge.core.catalog import load_catalog
        from edge.core.catalog_build import build_catalog
        from edge.core.config_file import load_config
        from edge.daemon.second_opinions import SecondOpinions
        config = load_config({str(config)!r})
        models = Models.open(config)
        build_catalog({str(REPO / "samples" / "shelf-catalog")!r}, {str(tmp_path / "catalog")!r}, models.embedder,
                      models.verifier, models.detector, "shelf")
        opinions = SecondOpinions(identifier_for(config, load_catalog({str(tmp_path / "catalog")!r}), models), models.second)
        opinions.ask(7, cv2.imread({str(QUERIES / "cha-mate-limao.jpg")!r}))
        wait([opinions._pending[7][1]], timeout=240)
        [(track, answer, _, _)] = opinions.take({{7}})
        print(type(models.second).__name__, track, answer.status, answer.product.product_id)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["OnnxLightGlueVerifier", "7", "identified", "cha-mate-limao"]


def test_a_folder_without_the_export_or_made_for_another_keypoint_count_is_refused_with_the_command_to_run(exported, tmp_path):
    config = VerifierConfig(kind="aliked-lightglue", max_keypoints=KEYPOINTS, matcher_onnx=tmp_path)
    with pytest.raises(ShelfIDError, match="export-matcher --out"):
        open_verifier(config)
    with pytest.raises(ShelfIDError, match="export-matcher --max-keypoints 1024"):
        open_verifier(config.model_copy(update={"matcher_onnx": exported, "max_keypoints": 1024}))
    for part, name in FILES.items():  # each part's file, but the keypoints' is LightGlue's encoder
        (tmp_path / name).write_bytes((exported / FILES["encode" if part == "keypoints" else part]).read_bytes())
    with pytest.raises(ShelfIDError, match="not the keypoints part"):
        open_verifier(config)


@pytest.mark.parametrize("verifier, error", [
    ("kind: sift\n  matcher_onnx: {folder}", "set kind or second_opinion to aliked-lightglue"),
    ("kind: disk-lightglue\n  matcher_onnx: {folder}", "set kind or second_opinion to aliked-lightglue"),
    ("kind: aliked-lightglue\n  matcher_onnx: {folder}/absent", "matcher_onnx folder not found"),
])
def test_a_config_naming_the_export_for_another_verifier_or_a_missing_folder_is_refused(tmp_path, verifier, error):
    path = tmp_path / "config.yaml"
    path.write_text("verifier:\n  " + verifier.format(folder=tmp_path) + "\n")
    with pytest.raises(ConfigError, match=error):
        load_config(path)


def test_the_verifier_benchmark_times_each_kind_on_the_same_crops(exported, capsys):
    assert shelfid(["bench", "verifier", "--images", str(REPO / "samples" / "shelf-catalog"), "--kinds", "sift",
                    "--matcher-onnx", str(exported), "--max-keypoints", str(KEYPOINTS), "--repeats", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["verifier"] for r in rows] == ["sift", "aliked-lightglue (ONNX Runtime)"]
    assert all(r["features_ms_p50"] > 0 and r["match_ms_p50"] > 0 and r["images"] == 3 for r in rows)
    assert rows[1]["keypoints_p50"] == KEYPOINTS


def test_the_exported_aliked_hands_its_memory_back_after_each_crop(exported):
    """Every crop is another size, and ONNX Runtime's arena kept what the largest took (~1.1 GB after a few 512 px
    crops, measured): the verifier's sessions shrink it after each run. In a fresh process, so the RSS is its own."""
    script = textwrap.dedent(f"""
        import cv2
        from edge.core.config import VerifierConfig
        from edge.core.verifier.lightglue_onnx import OnnxLightGlueVerifier
        def rss_mb():
            return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) // 1024
        verifier = OnnxLightGlueVerifier(VerifierConfig(kind="aliked-lightglue", device="cpu", max_keypoints={KEYPOINTS},
                                                        matcher_onnx={str(exported)!r}), threads=1)
        shelf = cv2.resize(cv2.imread({str(REPO / "samples" / "shelf" / "frame_0150.jpg")!r}), (512, 512))
        before = rss_mb()
        verifier.features(shelf), verifier.features(shelf[:, :300])
        released = rss_mb() - before
        verifier.keypoints._run_options = None  # as the session ran before it released anything
        verifier.features(shelf), verifier.features(shelf[:, :300])
        print(released, rss_mb() - before)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    released, kept = map(int, out.stdout.split())
    assert released < 150 and kept > released + 250, (released, kept)

"""The second opinion: a learned verifier (ALIKED + LightGlue, the shipped weight files, on the CPU) against the pixels
every device holds, each candidate's catalog thumbnail, decided as the first opinion."""

from __future__ import annotations

import cv2
import pytest

from edge.core.assembly import Models, identifier_for
from edge.core.catalog import load_catalog
from edge.core.catalog_build import build_catalog
from edge.core.config import Config, VerifierConfig
from edge.core.second_opinion import SecondOpinion
from edge.core.verifier import open_verifier
from tests.conftest import REPO

QUERIES = REPO / "tests" / "data" / "queries"


@pytest.fixture(scope="module")
def opinion(tmp_path_factory) -> SecondOpinion:
    config = Config()
    models = Models.open(config)
    out = tmp_path_factory.mktemp("second") / "catalog"
    build_catalog(REPO / "samples" / "shelf-catalog", out, models.embedder, models.verifier, models.detector, "shelf")
    identifier = identifier_for(config, load_catalog(out), models)
    return SecondOpinion(identifier, open_verifier(VerifierConfig(kind="aliked-lightglue", device="cpu", max_keypoints=512)))


def test_it_names_the_product_from_its_thumbnail_and_the_name_settles_the_track(opinion):
    ident = opinion.identify(cv2.imread(str(QUERIES / "cha-mate-limao.jpg")))
    assert ident.status == "identified" and ident.product.product_id == "cha-mate-limao" and ident.clear
    assert ident.inliers >= opinion.identifier.thresholds.min_inliers


def test_it_names_nothing_for_a_product_outside_the_catalog_or_a_crop_too_small_a_part_of_the_face(opinion):
    other = opinion.identify(cv2.imread(str(QUERIES / "matte-leao.jpg")))
    assert other.status == "unknown" and other.product is None and not other.clear
    bottle = cv2.imread(str(QUERIES / "cha-mate-limao.jpg"))
    foot = opinion.identify(bottle[int(bottle.shape[0] * 0.7):])
    assert foot.status == "unknown", foot


def test_a_products_features_are_made_once(opinion):
    index = [p.product_id for p in opinion.identifier.products].index("cha-mate-natural")
    first = opinion.references(index)
    assert len(first) == 1 and first[0][0].descriptors.shape[1] == 128  # the thumbnail, ALIKED's descriptors
    assert opinion.references(index) is first


def test_it_names_a_pack_in_the_edition_a_later_catalog_image_shows(tmp_path):
    """The second opinion looks at a product's later catalog images too (their thumbnails): a pack in the edition only
    its second image shows (here the Chá Mate Limão bottle with red and blue swapped) is named, not refused on the
    colours of the first."""
    import shutil

    images = tmp_path / "images"
    shutil.copytree(REPO / "samples" / "shelf-catalog", images)
    first = cv2.imread(str(images / "cha-mate-limao" / "frame0000.jpg"))
    cv2.imwrite(str(images / "cha-mate-limao" / "frame0001-edition.jpg"), first[..., ::-1])
    config = Config()
    models = Models.open(config)
    build_catalog(images, tmp_path / "catalog", models.embedder, models.verifier, models.detector, "shelf")
    identifier = identifier_for(config, load_catalog(tmp_path / "catalog"), models)
    opinion = SecondOpinion(identifier, open_verifier(VerifierConfig(kind="aliked-lightglue", device="cpu", max_keypoints=512)))
    limao = [p.product_id for p in identifier.products].index("cha-mate-limao")
    assert len(opinion.references(limao)) == 2
    query = cv2.imread(str(QUERIES / "cha-mate-limao.jpg"))
    assert opinion.identify(query).product.product_id == "cha-mate-limao"
    edition = opinion.identify(query[..., ::-1].copy())
    assert edition.status == "identified" and edition.product.product_id == "cha-mate-limao", edition

"""Field references in the identifier, on real crops of the shelf video: a product the catalog lacks, taught from a few
crops of one frame, is named on other facings in other frames; its look-alike in the catalog keeps its name; refused
references and those the catalog holds already are not used; the store survives half-written folders."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge.core.assembly import Models, device_field_set, identifier_for
from edge.core.catalog import load_catalog
from edge.core.catalog_build import build_catalog
from edge.core.config import Config
from edge.core.field_references import ReferenceStore, new_reference
from edge.core.field_set import field_set
from tests.conftest import REPO

VIDEO = REPO / "samples" / "shelf.mp4"  # the first 8 s of the labelled video, every other frame, at half size
LABELS = json.loads((REPO / "samples" / "shelf-video-labels.json").read_text())["frames"]


def crops_of(frame_index: int, product: str) -> list[np.ndarray]:
    """The labelled facings of `product` on a frame of the labelled video, cut from samples/shelf.mp4."""
    capture = cv2.VideoCapture(str(VIDEO))
    capture.set(cv2.CAP_PROP_POS_FRAMES, frame_index // 2)
    ok, image = capture.read()
    capture.release()
    assert ok
    boxes = [[round(v / 2) for v in b["box"]] for b in LABELS[str(frame_index)] if b["product"] == product]
    return [image[y1:y2, x1:x2].copy() for x1, y1, x2, y2 in boxes]


@pytest.fixture(scope="module")
def natural_only(tmp_path_factory):
    """Models, and a catalog of Chá Mate Natural alone: every Chá Mate Limão is its look-alike, not in the catalog."""
    config = Config.model_validate({"device": {"data_dir": str(tmp_path_factory.mktemp("device"))}})
    models = Models.open(config)
    images = tmp_path_factory.mktemp("images")
    (images / "cha-mate-natural").symlink_to(REPO / "samples" / "shelf-catalog" / "cha-mate-natural")
    rows = (REPO / "samples" / "shelf-catalog" / "products.csv").read_text().splitlines()
    (images / "products.csv").write_text("\n".join([rows[0], *[r for r in rows if r.startswith("cha-mate-natural,")]]) + "\n")
    out = tmp_path_factory.mktemp("catalog") / "catalog"
    build_catalog(images, out, models.embedder, models.verifier, models.detector, "shelf")
    return config, models, load_catalog(out)


def teach(config: Config, catalog, crops: list[np.ndarray], product_id: str = "cha-mate-limao", **kw) -> list[str]:
    store = ReferenceStore(config.device.data_dir / "references")
    ids = []
    for crop in crops:
        reference = new_reference(catalog.catalog_id, product_id, kw.get("sku", "7896"), kw.get("name", "Chá Mate Limão"),
                                  new_product=kw.get("new", True), device_id="test", track_id=1, confirmed_by="test")
        store.add(reference, cv2.imencode(".jpg", crop)[1].tobytes())
        ids.append(reference.reference_id)
    return ids


def named(identifier, crops: list[np.ndarray]) -> list[str | None]:
    return [i.product.product_id if i.product else None for i in identifier.identify_crops(crops)]


def test_a_product_taught_from_one_frame_is_named_on_other_facings_and_frames_and_its_look_alike_keeps_its_name(natural_only):
    config, models, catalog = natural_only
    limao_later = crops_of(60, "cha-mate-limao")[2:] + crops_of(120, "cha-mate-limao")[2:]  # facings not taught, later frames
    natural_later = crops_of(60, "cha-mate-natural")
    before = identifier_for(config, catalog, models)
    assert named(before, limao_later) == [None] * 4  # the look-alike is never named Natural
    teach(config, catalog, crops_of(0, "cha-mate-limao")[:2])
    field = device_field_set(config, catalog, models)
    assert len(field) == 2 and [p.product_id for p in field.products] == ["cha-mate-limao"]
    after = identifier_for(config, catalog, models, field)
    assert named(after, limao_later).count("cha-mate-limao") >= 3 and "cha-mate-natural" not in named(after, limao_later)
    assert named(after, natural_later) == named(before, natural_later)  # Natural's crops are not taken by what was taught
    assert "cha-mate-limao" not in named(after, natural_later)


def test_refused_references_and_those_the_catalog_holds_are_not_used(natural_only, tmp_path):
    config, models, catalog = natural_only
    config = config.model_copy(update={"device": config.device.model_copy(update={"data_dir": tmp_path})})
    kept, refused = teach(config, catalog, crops_of(0, "cha-mate-limao")[:2])
    store = ReferenceStore(tmp_path / "references")
    store.mark_refused(refused, "verifies better as cha-mate-natural")
    assert [i.reference_id for i in device_field_set(config, catalog, models).images] == [kept]
    # a reference for a product the catalog does not have, not marked new: not used (the catalog changed under it)
    teach(config, catalog, crops_of(0, "cha-mate-limao")[2:3], product_id="gone-product", new=False)
    assert [i.reference_id for i in device_field_set(config, catalog, models).images] == [kept]


def test_a_reference_set_is_computed_once(natural_only):
    config, models, catalog = natural_only
    crops = crops_of(0, "cha-mate-limao")[:2]
    references = [(new_reference("shelf", "cha-mate-limao", "1", "L", new_product=True, device_id="d", track_id=1, confirmed_by="t"), c)
                  for c in crops]
    first = field_set(catalog, references[:1], models.embedder, models.verifier)
    both = field_set(catalog, references, models.embedder, models.verifier, known=first)
    assert both.images[0].features is first.images[0].features  # reused, not recomputed
    assert np.array_equal(both.embeddings[0], first.embeddings[0]) and len(both) == 2


def test_the_store_lists_whole_references_only_and_cleans_what_a_cut_left(tmp_path):
    store = ReferenceStore(tmp_path / "references")
    reference = new_reference("shelf", "p-1", "1", "P", new_product=True, device_id="d", track_id=3, confirmed_by="t")
    store.add(reference, b"\xff\xd8jpeg")
    (tmp_path / "references" / ".half.tmp").mkdir()  # a cut between writing and renaming
    (tmp_path / "references" / ".half.tmp" / "crop.jpg").write_bytes(b"x")
    assert [r.reference_id for r in store.all()] == [reference.reference_id] and store.crop(reference.reference_id) == b"\xff\xd8jpeg"
    store.clean()
    assert sorted(p.name for p in (tmp_path / "references").iterdir()) == [reference.reference_id]
    with pytest.raises(ValueError, match="product id"):
        new_reference("shelf", "../etc", "1", "P", new_product=True, device_id="d", track_id=3, confirmed_by="t")
    with pytest.raises(KeyError):
        store.crop("../" + reference.reference_id)

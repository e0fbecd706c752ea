"""tools/evaluate.py --detect: which detection of a store photo is judged as its answer (tests/data/grocery-mini)."""

from __future__ import annotations

import cv2
import numpy as np

from edge.core.assembly import Models, identifier_for
from edge.core.catalog import load_catalog
from edge.core.config import Config
from edge.core.identify import Timings
from edge.daemon.tracker import iou_matrix
from tests.conftest import REPO
from tools.evaluate import evaluation_config, judged, make_catalog, read_dataset
from tools.evaluate_video import IOU

MINI = REPO / "tests" / "data" / "grocery-mini"


def test_detect_judges_the_photos_labelled_product_not_a_named_pack_beside_it(tmp_path):
    """A pack of another catalog product beside the photo's own (the shelf behind a hand-held pack) is named, rightly;
    judged as the photo's answer it was a wrong identification. With the photo's labelled box it is not judged."""
    products, photos = read_dataset(MINI, "val")
    packaged = [p for p in products if p.packaged]
    config = evaluation_config(Config())
    models = Models.open(config)
    identifier = identifier_for(config, load_catalog(make_catalog(packaged, tmp_path, config, models)), models)
    path, class_id = photos[0]
    photo = cv2.imread(str(path))
    neighbour = cv2.imread(str(next(p for p in packaged if p.class_id != class_id).iconic))
    neighbour = cv2.resize(neighbour, (photo.shape[0] * neighbour.shape[1] // neighbour.shape[0], photo.shape[0]))
    scene = np.hstack([photo, neighbour])
    main = (0.0, 0.0, float(photo.shape[1]), float(photo.shape[0]))

    _, anything = judged(identifier, scene, True, 0.7, Timings())
    assert anything[0].identification.status == "identified" and anything[0].bbox[0] >= photo.shape[1] - 5  # the neighbour
    _, over_main = judged(identifier, scene, True, 0.7, Timings(), main)
    assert over_main and len(over_main) < len(anything)
    overlap = iou_matrix(np.asarray([main]), np.asarray([f.bbox for f in over_main]))[0]
    assert (overlap >= IOU).all()

"""Assembling the identification engine from a config: the models (one set per process), the decision, the index."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.core.catalog import Catalog, load_catalog
from edge.core.config import Config, IndexConfig, VerifierConfig
from edge.core.datadir import DataDir
from edge.core.decision import Calibration, Thresholds, load_calibration
from edge.core.errors import CatalogError, ShelfIDError
from edge.core.field_references import ReferenceStore, catalog_file_name
from edge.core.field_set import EMPTY, FieldSet, field_set
from edge.core.identify import Identifier
from edge.core.index import CatalogIndex, search_one_query_at_a_time
from edge.core.verifier import Verifier, open_verifier
from models.backends import BackendOptions
from models.detector import Detector, DetectorOptions
from models.embedder import Embedder
from models.runtime import WEIGHTS_DIR, open_detector, open_embedder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Models:
    """The networks and the decision a config names, opened once per process: every identifier built for another
    catalog (the daemon's hot swap, the server's detect and publish) shares them."""

    detector: Detector | None
    embedder: Embedder
    verifier: Verifier
    calibration: Calibration | None = None
    second: Verifier | None = None  # verifier.second_opinion's (edge.core.second_opinion)

    @staticmethod
    def open(config: Config) -> Models:
        """The detector, embedder and verifier a config names (bundled defaults where it names none), and its decision."""
        m = config.models
        options = backend_options(config)
        detector = open_detector(m.detector, m.backend, options, DetectorOptions(
            m.conf_threshold, m.iou_threshold, tuple(m.classes) if m.classes else None, m.class_agnostic, m.max_detections))
        embedder = open_embedder(m.embedder, m.backend, options)
        verifier = open_verifier(config.verifier, m.threads)
        kind = config.verifier.second_opinion
        second = open_second_opinion(config.verifier, kind, m.threads) if kind else None
        return Models(detector, embedder, verifier, calibration_for(config, verifier), second)


def open_second_opinion(verifier: VerifierConfig, kind: str, threads: int = 0) -> Verifier:
    """The learned verifier of verifier.second_opinion: the first verifier's settings (keypoints, device, input size)
    with another kind. `threads`: open_verifier's."""
    return open_verifier(verifier.model_copy(update={"kind": kind, "weights": None}), threads)


def backend_options(config: Config) -> BackendOptions:
    m = config.models
    return BackendOptions(threads=m.threads, precision=m.precision, engine_cache_dir=m.engine_cache_dir, device=m.device)


def load_identifier(config: Config, catalog_dir: Path, field_references: bool = False, still: bool = False) -> Identifier:
    """`field_references`: with the device's (the daemon's identifier; `shelfid detect` judges the catalog alone);
    `still`: identifier_for's."""
    search_one_query_at_a_time()
    models = Models.open(config)
    catalog = load_catalog(catalog_dir, models.embedder.model_id, models.verifier.id)
    return identifier_for(config, catalog, models, device_field_set(config, catalog, models) if field_references else EMPTY, still)


def calibration_for(config: Config, verifier: Verifier) -> Calibration | None:
    """The calibrated decision for this verifier (config file or the bundled one), or None for plain thresholds."""
    d = config.decision
    if d.kind == "thresholds":
        return None
    path = d.calibration or WEIGHTS_DIR / f"decision-{verifier.id}.json"
    if d.calibration is None and not path.is_file():
        # the default decision with a verifier nothing was fitted for: the verified thresholds, said once
        log.warning("no bundled decision calibration for verifier %s: deciding by the verified thresholds "
                    "(python -m tools.fit_decision fits one; decision.kind: thresholds silences this)", verifier.id)
        return None
    if not path.is_file():
        raise ShelfIDError(f"decision.calibration {path} is absent: run python -m tools.fit_decision, or set decision.kind: thresholds")
    calibration = load_calibration(path)
    if calibration.verifier_id != verifier.id:
        raise ShelfIDError(f"{path}: calibrated for verifier {calibration.verifier_id}, this device runs {verifier.id}")
    return calibration


def catalog_index(catalog: Catalog, ix: IndexConfig) -> CatalogIndex:
    """The catalog's search index as the config asks for it (its stored index, or one built at load)."""
    try:
        return CatalogIndex(catalog.embeddings, ix.kind, ix.lsh_bits, ix.rerank, catalog.stored_index, ix.nprobe)
    except ValueError as exc:  # a stored index that does not open is a broken catalog, said with its path
        raise CatalogError(f"{catalog.path}: {exc}") from None


def identifier_for(config: Config, catalog: Catalog, models: Models, field: FieldSet = EMPTY, still: bool = False) -> Identifier:
    """An identifier for this catalog with these models (and these field references), as the config sets it up;
    `still`: for photos (verifier.still_candidates verified per box), else for the daemon's tracks."""
    ix, d = config.index, config.decision
    candidates = config.verifier.still_candidates if still else config.verifier.candidates
    return Identifier(models, catalog, catalog_index(catalog, ix), max(ix.top_k, candidates), candidates, Thresholds.of(d),
                      appearance=d.max_differing is not None, field=field)


def device_field_set(config: Config, catalog: Catalog, models: Models, known: FieldSet | None = None) -> FieldSet:
    """The device's field references (device.data_dir/references) that this catalog does not hold yet, ready to use;
    `known`: the set in use, whose computed references are reused."""
    store = ReferenceStore(DataDir(config.device.data_dir).references)
    references = store.all()
    if not references:
        return EMPTY
    held = in_catalog(catalog, [r.reference_id for r in references])
    loaded = []
    for reference in references:
        if reference.reference_id in held:
            continue
        crop = cv2.imdecode(np.frombuffer(store.crop(reference.reference_id), np.uint8), cv2.IMREAD_COLOR)
        if crop is None:
            log.warning("field reference %s: its crop does not decode; not used", reference.reference_id)
            continue
        loaded.append((reference, crop))
    return field_set(catalog, loaded, models.embedder, models.verifier, known)


def in_catalog(catalog: Catalog, reference_ids: list[str]) -> set[str]:
    """The references the catalog already holds as images (the server files an accepted one as field-<id>.<ext>)."""
    files = " ".join(str(row.get("file", "")) for row in catalog.images) if catalog.image_count else ""
    return {rid for rid in reference_ids if catalog_file_name(rid) in files}

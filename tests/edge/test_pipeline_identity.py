"""How the daemon's pipeline turns identifications of one track into events: one identified event per track, always."""

from __future__ import annotations

import pytest

from edge.core.catalog import Product
from edge.core.config import Config
from edge.core.identify import Identification
from edge.daemon.pipeline import Pipeline
from edge.reporting.sinks import MemorySink

COLA, FANTA = Product("cola", "1", "Cola"), Product("fanta", "2", "Fanta")
NAMED_UNKNOWN = Product("unknown", "3", "Unknown Brand Tea")  # "unknown" is a valid product id
SHAPE = (360, 640, 3)


class CatalogStub:
    catalog_id, version, products = "shelf", 1, [COLA, FANTA, NAMED_UNKNOWN]


class IdentifierStub:
    """Only what Pipeline reads to make events (the identification itself is not run here)."""

    catalog = CatalogStub()


@pytest.fixture
def pipeline():
    config = Config.model_validate({"tracker": {"confirm_frames": 2, "background": False}, "mqtt": {"enabled": False}})
    p = Pipeline(config, IdentifierStub(), MemorySink())
    [track], _ = p.tracker.update([(10, 10, 60, 200)], 0.0)
    return p, track


def seen(product: Product | None, clear: bool = False) -> Identification:
    if product is None:
        return Identification("unknown", None, COLA, 0.7, 3, 0.2, 0.05, 3)
    return Identification("identified", product, None, 0.95, 200 if clear else 40, 0.9, 0.6 if clear else 0.2, 1, clear=clear)


def test_a_clear_identification_confirms_at_once_and_is_reported_once(pipeline):
    p, track = pipeline
    assert [e["product"]["id"] for e in p._apply(track, seen(COLA, clear=True), SHAPE, 1.0)] == ["cola"]
    assert p._apply(track, seen(COLA, clear=True), SHAPE, 2.0) == []
    assert p._apply(track, seen(COLA), SHAPE, 3.0) == []


def test_a_weak_identification_needs_agreeing_votes(pipeline):
    p, track = pipeline
    assert p._apply(track, seen(COLA), SHAPE, 1.0) == []
    assert [e["type"] for e in p._apply(track, seen(COLA), SHAPE, 2.0)] == ["identified"]


def test_another_product_on_the_same_track_is_a_new_track(pipeline):
    p, track = pipeline
    [first] = p._apply(track, seen(COLA, clear=True), SHAPE, 1.0)
    [second] = p._apply(track, seen(FANTA, clear=True), SHAPE, 2.0)
    assert second["product"]["id"] == "fanta" and second["track_id"] != first["track_id"] == 1
    assert track.track_id == second["track_id"]  # the box and its motion carry on under the new id


def test_a_recheck_that_sees_nothing_identical_does_not_take_the_identity_back(pipeline):
    p, track = pipeline
    p._apply(track, seen(COLA, clear=True), SHAPE, 1.0)
    assert p._apply(track, seen(None), SHAPE, 2.0) == [] and p._apply(track, seen(None), SHAPE, 3.0) == []
    assert track.confirmed == "cola" and len(p.sink.events) == 1


def test_a_product_whose_id_is_unknown_then_another_product_is_two_tracks(pipeline):
    """Issue 38: the string "unknown" was the track's unknown marker, so this emitted two identified events on one track."""
    p, track = pipeline
    [first] = p._apply(track, seen(NAMED_UNKNOWN, clear=True), SHAPE, 1.0)
    [second] = p._apply(track, seen(COLA, clear=True), SHAPE, 2.0)
    assert first["product"]["id"] == "unknown" and second["product"]["id"] == "cola"
    assert second["track_id"] != first["track_id"]

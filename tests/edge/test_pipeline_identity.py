"""How the daemon's pipeline turns identifications of one track into events: one identified event per track, always."""

from __future__ import annotations

import json
from types import SimpleNamespace

import cv2
import jsonschema
import numpy as np
import pytest

from edge.core.catalog import Product
from edge.core.config import Config
from edge.core.identify import Identification
from edge.daemon.grabber import Frame
from edge.daemon.pipeline import Pipeline
from edge.daemon.status import page_status, stats_message
from edge.reporting.sinks import LocalSink, MemorySink
from edge.web.live import LiveState
from tests.conftest import REPO

COLA, FANTA = Product("cola", "1", "Cola"), Product("fanta", "2", "Fanta")
NAMED_UNKNOWN = Product("unknown", "3", "Unknown Brand Tea")  # "unknown" is a valid product id
SHAPE = (360, 640, 3)


class CatalogStub:
    catalog_id, version, products = "shelf", 1, [COLA, FANTA, NAMED_UNKNOWN]


class IdentifierStub:
    """Only what Pipeline reads to make events (the identification itself is not run here)."""

    catalog = CatalogStub()
    models = SimpleNamespace(second=None)  # no second opinion


@pytest.fixture
def pipeline():
    config = Config.model_validate({"tracker": {"confirm_frames": 2, "background": False}, "mqtt": {"enabled": False}})
    p = Pipeline(config, IdentifierStub(), MemorySink())
    [track], _ = p.tracker.update([(10, 10, 60, 200)], 0.0)
    return p, track


def seen(product: Product | None, clear: bool = False) -> Identification:
    if product is None:
        return Identification(status="unknown", product=None, guess=COLA, similarity=0.7, inliers=3, inlier_ratio=0.2, spread=0.05,
                              verified=3)
    return Identification(status="identified", product=product, guess=None, similarity=0.95, inliers=200 if clear else 40,
                          inlier_ratio=0.9, spread=0.6 if clear else 0.2, verified=1, clear=clear)


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


def unknown_looking_like(guess: Product) -> Identification:
    return Identification(status="unknown", product=None, guess=guess, similarity=0.7, inliers=3, inlier_ratio=0.2, spread=0.05,
                          verified=3)


def test_a_named_track_that_moved_far_onto_another_product_loses_its_name(pipeline):
    """Issue 32: during a pan the tracker followed a Chá Mate Natural box onto another shelf's dark bottle, which kept
    the name. A re-check after a large move that looks most like another product ends the identity: a new track."""
    p, track = pipeline
    [first] = p._apply(track, seen(COLA, clear=True), SHAPE, 1.0)
    p.tracker.update([(30, 10, 80, 200)], 1.4)  # the camera panned: the box moved far from where it was named
    p.tracker.update([(50, 10, 100, 200)], 1.5)
    assert track.bbox == (50, 10, 100, 200)
    assert p._apply(track, unknown_looking_like(FANTA), SHAPE, 2.0) == []
    assert track.confirmed is None and track.track_id != first["track_id"] and p.stats.identities_lost == 1
    [again] = p._apply(track, seen(FANTA, clear=True), SHAPE, 3.0)  # decided anew, under its new id
    assert again["product"]["id"] == "fanta" and again["track_id"] == track.track_id


def test_a_moved_track_whose_crop_still_looks_most_like_its_product_keeps_its_name(pipeline):
    p, track = pipeline
    p._apply(track, seen(COLA, clear=True), SHAPE, 1.0)
    p.tracker.update([(30, 10, 80, 200)], 1.4)
    p.tracker.update([(50, 10, 100, 200)], 1.5)
    assert p._apply(track, unknown_looking_like(COLA), SHAPE, 2.0) == []  # blurred by the pan, still most like Cola
    assert track.confirmed == "cola" and p.stats.identities_lost == 0


def test_a_track_that_stayed_keeps_its_name_whatever_a_recheck_sees(pipeline):
    p, track = pipeline
    p._apply(track, seen(COLA, clear=True), SHAPE, 1.0)
    assert p._apply(track, unknown_looking_like(FANTA), SHAPE, 2.0) == []  # a hand in front: the box did not move
    assert track.confirmed == "cola"


class DetectingStub(IdentifierStub):
    """One box every frame, never identified by the first opinion."""

    detector = SimpleNamespace(detect=lambda image: [SimpleNamespace(bbox=(10.0, 10.0, 60.0, 200.0))])

    def identify_crops(self, crops, timings=None):
        return [seen(None) for _ in crops]


class OpinionStub:
    def __init__(self, answer: Identification):
        self.answer, self.asked = answer, 0
        self.verifier = SimpleNamespace(id="aliked-stub")

    def identify(self, crop):
        self.asked += 1
        return self.answer


def second_opinion_pipeline(answer: Identification, stub: type = DetectingStub) -> tuple[Pipeline, OpinionStub]:
    config = Config.model_validate({"tracker": {"confirm_frames": 2, "background": False}, "mqtt": {"enabled": False}})
    identifier = stub()
    identifier.models = SimpleNamespace(second=SimpleNamespace(id="aliked-stub"))  # a second verifier; its opinion is stubbed below
    p = Pipeline(config, identifier, MemorySink())
    p.second.opinion = OpinionStub(answer)
    return p, p.second.opinion


def frames(p: Pipeline, count: int) -> list[dict]:
    image = np.full(SHAPE, 128, np.uint8)
    return [event for i in range(count) for event in p.process(Frame(i, float(i), image))]


def test_a_second_opinion_is_asked_once_per_unknown_track_and_its_name_settles_the_track():
    p, opinion = second_opinion_pipeline(seen(COLA, clear=True))
    events = frames(p, 6)
    assert [(e["type"], e["track_id"]) for e in events] == [("unknown", 1), ("identified", 1)]
    assert events[1]["product"]["id"] == "cola"
    assert opinion.asked == 1 and p.second.asked == 1 and p.second.named == 1
    assert p.unknowns.recent() == []  # named: no longer offered for teaching
    grabber = SimpleNamespace(grabbed=6, dropped=0, status="ok", reconnects=0)
    status = page_status(p.config, stats_message(p.config, p, grabber), LocalSink(), LiveState())
    jsonschema.validate(status, json.loads((REPO / "schemas" / "status.schema.json").read_text()))
    assert status["second_opinion"]["asked"] == 1 and status["second_opinion"]["named"] == 1


def test_a_second_opinion_that_names_nothing_leaves_the_track_unknown_and_is_not_asked_again():
    p, opinion = second_opinion_pipeline(seen(None))
    events = frames(p, 6)
    assert [e["type"] for e in events] == ["unknown"] and opinion.asked == 1 and p.second.named == 0
    assert [u["track_id"] for u in p.unknowns.recent()] == [1]


class SlidingStub(DetectingStub):
    """One box that slides 15 px a frame: one track to the tracker, but within three frames over something else."""

    detector = SimpleNamespace(detect=lambda image: [SimpleNamespace(bbox=(10.0 + 15 * image[0, 0, 0], 10.0, 60.0 + 15 * image[0, 0, 0], 200.0))])


def test_a_second_opinion_about_a_crop_whose_box_has_moved_on_names_nothing():
    """The answer is about the track's sharpest crop, taken frames before it comes back: seen on the shelf video, a tall
    box over a bottle and the pack below it, the sharpest crop showing the bottle, the box later over the pack alone."""
    p, opinion = second_opinion_pipeline(seen(COLA, clear=True), SlidingStub)
    events = [e for i in range(6) for e in p.process(Frame(i, float(i), np.full(SHAPE, i, np.uint8)))]
    assert len(p.tracker.tracks) == 1 and p.tracker.tracks[0].track_id == 1  # one track all along
    assert [e["type"] for e in events] == ["unknown"] and opinion.asked == 1 and p.second.named == 0
    assert [u["track_id"] for u in p.unknowns.recent()] == [1]  # still offered for teaching


def test_identified_in_the_background_a_crop_keeps_the_box_of_its_own_frame():
    """The worker's answer comes back frames after the crop: the box a second opinion's answer will be held against is
    the one the crop was cut from, not wherever the tracker has followed the track since."""
    config = Config.model_validate({"tracker": {"confirm_frames": 2, "background": True}, "mqtt": {"enabled": False}})
    p = Pipeline(config, SlidingStub(), MemorySink())
    p.process(Frame(0, 0.0, np.full(SHAPE, 0, np.uint8)))
    assert p.worker.drain(30)
    p.process(Frame(1, 1.0, np.full(SHAPE, 1, np.uint8)))  # takes the answer about frame 0's crop
    p.finish(SHAPE)
    assert p.tracker.tracks[0].bbox[0] > 10.0  # the box has slid on since
    _, box = p.unknowns.sharpest(1)
    assert box == (10.0, 10.0, 60.0, 200.0)


def test_a_track_not_yet_named_waits_a_few_frames_for_a_sharper_crop(shelf_frames):
    """During a pan the same bottle is sharp on one frame and smeared on the next: an identification is not spent on
    the smear while a sharper crop may come, but never waits more than MAX_WAIT frames; a named track is re-checked
    on whatever the frame shows; a track that turns out to be another object starts over."""
    from edge.daemon.pipeline import MAX_WAIT, sharp_enough
    from edge.daemon.tracker import Tracker
    from edge.daemon.unknowns import sharpness

    crop = np.ascontiguousarray(shelf_frames[0][180:680, 240:400])  # a Chá Mate bottle
    smeared = cv2.filter2D(crop, -1, np.full((1, 15), 1 / 15))  # a pan's horizontal blur
    assert 0.8 < sharpness(cv2.resize(crop, None, fx=2, fy=2)) / sharpness(crop) < 1.25  # the blur, not the box's size
    tracker = Tracker(0.3, 5)
    [track], _ = tracker.update([(240, 180, 400, 680)], 0.0)
    assert sharp_enough(track, crop)  # the first crop is identified at once
    assert [sharp_enough(track, smeared) for _ in range(MAX_WAIT + 1)] == [False] * MAX_WAIT + [True]
    assert not sharp_enough(track, smeared) and sharp_enough(track, crop)
    tracker.renumber(track, 1.0)
    assert sharp_enough(track, smeared)  # another physical object: nothing sharper seen of it yet
    track.confirmed = "cola"
    track.sharpest = sharpness(crop)
    assert sharp_enough(track, smeared)

"""Tracker: one id per moving product, short misses tolerated, identities confirmed once."""

from __future__ import annotations

from edge.daemon.tracker import UNKNOWN, Tracker, Verdict, needs_identification


def shifted(box, dx):
    return (box[0] + dx, box[1], box[2] + dx, box[3])


def test_products_moving_across_the_frame_keep_their_ids():
    tracker = Tracker(iou_threshold=0.3, max_missed=3)
    boxes = [(100, 100, 160, 300), (200, 100, 260, 300), (300, 100, 360, 300)]
    first, _ = tracker.update(boxes, 0.0)
    ids = [t.track_id for t in first]
    for step in range(1, 20):  # the camera pans: everything moves 25 px per frame, more than a third of a box
        seen, ended = tracker.update([shifted(b, -25 * step) for b in boxes], step / 30)
        assert [t.track_id for t in seen] == ids and not ended


def test_a_short_miss_keeps_the_track_and_a_long_one_ends_it():
    tracker = Tracker(iou_threshold=0.3, max_missed=2)
    box = (0, 0, 50, 100)
    [track], _ = tracker.update([box], 0)
    tracker.update([], 1)
    tracker.update([], 2)
    [again], _ = tracker.update([box], 3)
    assert again.track_id == track.track_id and again.hits == 2
    for t in range(4, 6):
        assert tracker.update([], t)[1] == []
    _, ended = tracker.update([], 6)
    assert [t.track_id for t in ended] == [track.track_id] and tracker.tracks == []


def test_a_new_product_gets_a_new_id():
    tracker = Tracker()
    [a], _ = tracker.update([(0, 0, 50, 100)], 0)
    seen, _ = tracker.update([(0, 0, 50, 100), (400, 0, 450, 100)], 1)
    assert {t.track_id for t in seen} == {a.track_id, a.track_id + 1}


def test_identity_is_confirmed_once_after_agreeing_votes_then_rechecked_rarely():
    tracker = Tracker()
    [track], _ = tracker.update([(0, 0, 50, 100)], 0)
    assert needs_identification(track, 0, recheck_s=10)
    assert [track.vote("cola", t, confirm_frames=3) for t in (0, 1, 2)] == [Verdict.NOTHING, Verdict.NOTHING, Verdict.CONFIRMED]
    assert track.confirmed == "cola"
    assert not needs_identification(track, 5, recheck_s=10)
    assert needs_identification(track, 13, recheck_s=10)
    assert track.vote("cola", 13, 3) is Verdict.NOTHING  # still the same identity: not reported again
    tracker.update([(200, 0, 250, 100)], 14)  # jumped: a new track, the old one keeps its identity
    assert track.confirmed == "cola"


def test_disagreeing_votes_do_not_confirm_and_unknown_is_an_identity_too():
    tracker = Tracker()
    [track], _ = tracker.update([(0, 0, 50, 100)], 0)
    assert {track.vote(p, i, 3) for i, p in enumerate(["a", "b", "a"])} == {Verdict.NOTHING}
    assert [track.vote(None, t, 3) for t in (3, 4, 5)] == [Verdict.NOTHING, Verdict.NOTHING, Verdict.CONFIRMED]
    assert track.confirmed is UNKNOWN


def test_a_product_confirmed_where_the_track_was_unknown_is_its_identity_not_a_new_object():
    [track], _ = Tracker().update([(0, 0, 50, 100)], 0)
    assert track.vote(None, 0, 1) is Verdict.CONFIRMED
    assert track.vote("cola", 1, 1, clear=True) is Verdict.CONFIRMED and track.confirmed == "cola"


def test_a_recheck_that_sees_no_product_keeps_the_product_and_another_product_is_a_new_object():
    [track], _ = Tracker().update([(0, 0, 50, 100)], 0)
    assert track.vote("cola", 0, 2, clear=True) is Verdict.CONFIRMED
    assert [track.vote(None, t, 2) for t in (1, 2)] == [Verdict.NOTHING, Verdict.NOTHING] and track.confirmed == "cola"
    assert track.vote("fanta", 3, 2, clear=True) is Verdict.NEW_OBJECT and track.confirmed == "fanta"


def test_a_product_whose_id_is_unknown_is_a_product_like_any_other():
    """The id "unknown" is a valid product id: it must not read as the track's unknown identity (issue 38)."""
    [track], _ = Tracker().update([(0, 0, 50, 100)], 0)
    assert track.vote("unknown", 0, 1, clear=True) is Verdict.CONFIRMED and track.confirmed == "unknown"
    assert track.confirmed is not UNKNOWN
    assert track.vote("cola", 1, 1, clear=True) is Verdict.NEW_OBJECT


def test_a_track_confirmed_unknown_that_starts_to_look_like_a_product_is_identified_again_at_once():
    """A bottle first seen half hidden (an arm in front) is confirmed unknown; once a re-check names it, the votes that
    confirm it come frame by frame, not one per recheck_s (3 × 10 s: a shelf zone reported it missing meanwhile)."""
    [track], _ = Tracker().update([(0, 0, 50, 100)], 0)
    assert [track.vote(None, t, 3) for t in (0, 1, 2)][-1] is Verdict.CONFIRMED and track.confirmed is UNKNOWN
    assert not needs_identification(track, 5, recheck_s=10)
    assert track.vote("cola", 12, 3) is Verdict.NOTHING
    assert needs_identification(track, 12.1, recheck_s=10)  # a change is being confirmed: no waiting
    assert track.vote("cola", 12.2, 3) is Verdict.NOTHING and track.vote("cola", 12.3, 3) is Verdict.CONFIRMED
    assert not needs_identification(track, 12.4, recheck_s=10)

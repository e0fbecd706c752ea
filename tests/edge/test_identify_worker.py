"""The identification worker: results for every accepted job, a bounded queue, and a failure that does not stop it."""

from __future__ import annotations

import numpy as np
import pytest

from edge.core.assembly import load_identifier
from edge.core.config import Config
from edge.core.identify import crop_boxes
from edge.daemon.worker import IdentifyWorker


@pytest.fixture(scope="module")
def identifier(sample_catalog_dir):
    return load_identifier(Config(), sample_catalog_dir)


@pytest.fixture(scope="module")
def crops(identifier, shelf_frames):
    frame = shelf_frames[1]
    _, found = crop_boxes(frame, [d.bbox for d in identifier.detector.detect(frame)])
    assert len(found) >= 4
    return found[:4]


def test_every_accepted_job_comes_back_with_the_same_identities_as_inline(identifier, crops):
    worker = IdentifyWorker(identifier, max_jobs=4)
    assert worker.submit([10, 11], crops[:2], 1.0) and worker.submit([12, 13], crops[2:], 2.0)
    assert worker.drain(120) and worker.pending == 0
    results, timings = worker.take()
    worker.stop()
    assert [r.track_id for r in results] == [10, 11, 12, 13] and [r.timestamp for r in results] == [1.0, 1.0, 2.0, 2.0]
    assert all(r.identifier is identifier for r in results) and len(timings) == 2 and "verify" in timings[0]
    inline = identifier.identify_crops(crops)
    assert [r.identification.status for r in results] == [i.status for i in inline]
    assert worker.take() == ([], [])  # taken once


def test_a_full_queue_refuses_work_instead_of_piling_it_up(identifier, crops):
    worker = IdentifyWorker(identifier, max_jobs=1)
    accepted = [worker.submit([i], crops[:1], float(i)) for i in range(20)]
    assert accepted[0] and not all(accepted)  # the worker cannot keep up with 20 instant submissions
    worker.drain(120)
    results, _ = worker.take()
    worker.stop()
    assert sorted(r.track_id for r in results) == [i for i, ok in enumerate(accepted) if ok]


def test_a_crop_that_breaks_identification_is_reported_failed_and_the_worker_goes_on(identifier, crops):
    worker = IdentifyWorker(identifier, max_jobs=4)
    worker.submit([1], [np.zeros((5,), np.uint8)], 0.0)  # not an image: the embedder raises
    worker.submit([2], crops[:1], 0.0)
    worker.drain(120)
    results, _ = worker.take()
    worker.stop()
    assert [(r.track_id, r.identification is None) for r in results] == [(1, True), (2, False)]
    assert worker.failures == 1


def test_two_threads_share_the_queue_and_give_what_one_thread_gives(identifier, crops):
    worker = IdentifyWorker(identifier, threads=2)  # the daemon's default (tracker.identify_threads)
    assert len({t.name for t in worker._threads}) == 2 and all(t.is_alive() for t in worker._threads)
    jobs = [([i], crops[i % 4:i % 4 + 1], float(i)) for i in range(12)]
    accepted = []
    for ids, job_crops, ts in jobs:  # three jobs at most in flight: wait for room rather than drop
        while not worker.submit(ids, job_crops, ts):
            worker.drain(0.05)
        accepted.append(ids[0])
    assert worker.drain(120)
    results, _ = worker.take()
    inline = {i: identifier.identify_crops(job_crops)[0] for (i,), job_crops, _ in jobs}
    worker.stop()
    assert sorted(r.track_id for r in results) == accepted == list(range(12))  # every job once, whatever thread ran it
    assert all(r.identification.status == inline[r.track_id].status and
               r.identification.inliers == inline[r.track_id].inliers for r in results)
    assert not any(t.is_alive() for t in worker._threads)  # stop() ends both

"""Identification off the frame loop: worker threads run embed → search → verify on crops of new tracks.

The frame loop hands over the crops of the tracks that need an identity (one
batch per frame) and picks the results up at a later frame, so detection and
tracking keep the camera's rate while verification takes its time. The queue
is bounded: when the worker is behind, tracks simply wait for the next frame
(they stay due) instead of piling up crops of frames long gone. Several threads
take jobs from the one queue: the models and OpenCV release the GIL while they
compute, so a second thread uses the CPU the frame loop leaves idle.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from edge.core.identify import Identification, Identifier, Timings
from edge.daemon.tracker import Box

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    track_ids: tuple[int, ...]
    crops: tuple[np.ndarray, ...]  # copies: the frame they came from is not kept alive
    timestamp: float  # the frame's
    boxes: tuple[Box | None, ...]  # each track's box on that frame


@dataclass(frozen=True)
class Result:
    track_id: int
    identification: Identification | None  # None: identification failed (logged); the track is tried again
    timestamp: float  # of the frame the crop came from
    identifier: Identifier  # the one that produced it (a catalog switch may have happened since)
    crop: np.ndarray  # what was identified (the page offers unknown ones to teach)
    box: Box | None = None  # the track's box on the crop's frame (a second opinion's answer about the crop is held against it)


class IdentifyWorker:
    def __init__(self, identifier: Identifier, max_jobs: int | None = None, threads: int = 1):
        """`max_jobs`: jobs queued or running at most (default: one more than the threads)."""
        self.identifier = identifier
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=max_jobs or threads + 1)
        self._results: deque[Result] = deque()
        self._timings: deque[dict[str, float]] = deque()
        self._idle = threading.Condition()
        self._busy = 0
        self.failures = 0
        self._threads = [threading.Thread(target=self._run, name=f"identify-{i}", daemon=True) for i in range(threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, track_ids: list[int], crops: list[np.ndarray], timestamp: float, boxes: list[Box | None] | None = None) -> bool:
        """False (nothing queued) when the worker is already `max_jobs` behind. `boxes`: each track's box on the crops'
        frame, handed back with its result."""
        job = Job(tuple(track_ids), tuple(np.array(c, order="C") for c in crops), timestamp,
                  tuple(boxes) if boxes is not None else (None,) * len(crops))
        with self._idle:
            try:
                self._jobs.put_nowait(job)
            except queue.Full:
                return False
            self._busy += 1
            return True

    def take(self) -> tuple[list[Result], list[dict[str, float]]]:
        """Results and per-job stage timings ready since the last call."""
        results, timings = [], []
        while self._results:
            results.append(self._results.popleft())
        while self._timings:
            timings.append(self._timings.popleft())
        return results, timings

    @property
    def pending(self) -> int:
        """Jobs queued or running."""
        return self._busy

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every submitted job has its results; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def stop(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(30)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            identifier, timings = self.identifier, Timings()
            try:
                found = identifier.identify_crops(list(job.crops), timings)
            except Exception:  # a bad crop must not kill identification for the rest of the day
                self.failures += 1
                log.exception("identification of tracks %s failed", list(job.track_ids))
                found = [None] * len(job.crops)
            for track_id, ident, crop, box in zip(job.track_ids, found, job.crops, job.boxes):
                self._results.append(Result(track_id, ident, job.timestamp, identifier, crop, box))
            self._timings.append(timings.ms)
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

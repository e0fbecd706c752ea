"""Second opinions for the tracks the device confirmed unknown: asked once per track, on its sharpest crop so far, in a
thread of their own so that a slow learned verifier never holds up a frame (inline when the pipeline runs without
background threads: the evaluation tools)."""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from edge.core.identify import Identification, Identifier
from edge.core.second_opinion import SecondOpinion
from edge.core.verifier import Verifier
from edge.daemon.tracker import Box

log = logging.getLogger(__name__)
IN_FLIGHT = 2  # tracks asked at a time; the others wait for a later frame


def _one_thread() -> None:
    """On a CPU the learned verifier would take every core from the frame loop; on a GPU its CPU part is small anyway.
    On PyTorch: one thread here. On ONNX Runtime (verifier.matcher_onnx) the session has models.threads already, and
    torch is not imported: a device has none."""
    torch = sys.modules.get("torch")  # imported by the PyTorch verifier, if that is the one
    if torch is not None:
        torch.set_num_threads(1)


def _timed(opinion: SecondOpinion, crop: np.ndarray) -> tuple[Identification, float]:
    """The answer and its time in ms (the time goes into SecondOpinions.ms on the frame loop's thread, which the status
    reads: a deque appended from another thread while being read raises)."""
    start = time.perf_counter()
    identification = opinion.identify(crop)
    return identification, (time.perf_counter() - start) * 1000


class SecondOpinions:
    def __init__(self, identifier: Identifier, verifier: Verifier, background: bool = True):
        self.opinion = SecondOpinion(identifier, verifier)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="second-opinion", initializer=_one_thread) if background else None
        self._pending: dict[int, tuple[SecondOpinion, Future, np.ndarray, Box | None]] = {}  # ... and the crop's box
        self._asked: set[int] = set()
        self.asked = self.named = 0
        self.ms: deque[float] = deque(maxlen=500)  # recent answers' time, for the numbers (appended by the frame loop only)

    @property
    def verifier(self) -> Verifier:
        return self.opinion.verifier

    def wants(self, track_id: int) -> bool:
        """Not asked about yet, and room for one more."""
        return track_id not in self._asked and len(self._pending) < IN_FLIGHT

    def ask(self, track_id: int, crop: np.ndarray, box: Box | None = None) -> None:
        """`box`: the track's box on the crop's frame, handed back with the answer."""
        self._asked.add(track_id)
        self.asked += 1
        if self._executor is not None:
            future = self._executor.submit(_timed, self.opinion, crop)
        else:
            future = Future()
            future.set_result(_timed(self.opinion, crop))
        self._pending[track_id] = (self.opinion, future, crop, box)

    def take(self, live: set[int]) -> list[tuple[int, Identification, np.ndarray, Box | None]]:
        """The answers in, for the current catalog (an answer about the one switched away from is dropped), as (track,
        identification, crop, the crop's box); forgets tracks no longer in view."""
        done = []
        for track_id, (opinion, future, crop, box) in list(self._pending.items()):
            if not future.done():
                continue
            del self._pending[track_id]
            if future.exception() is not None:
                log.error("second opinion on track %d failed: %s", track_id, future.exception())
            else:
                identification, ms = future.result()
                self.ms.append(ms)
                if opinion is self.opinion:
                    done.append((track_id, identification, crop, box))
        self._asked &= live | set(self._pending)
        return done

    def switch(self, identifier: Identifier) -> None:
        """Another catalog (or field references): features are made anew for it; tracks may be asked again."""
        self.opinion = SecondOpinion(identifier, self.opinion.verifier)
        self._asked.clear()

    def stop(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

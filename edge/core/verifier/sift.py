"""SIFT + Lowe's ratio test (OpenCV): no weights, the fast CPU verifier."""

from __future__ import annotations

import cv2
import numpy as np

from edge.core.config import VerifierConfig
from edge.core.images import resize_longest
from edge.core.verifier import Features, Match
from edge.core.verifier.geometry import implausible, verify_geometry

RATIO = 0.8


class SIFTVerifier:
    descriptor_dim = 128

    def __init__(self, config: VerifierConfig):
        self.config = config
        self.id = f"sift-n{config.max_keypoints}-s{config.input_size}-up"
        self.sift = cv2.SIFT_create(nfeatures=config.max_keypoints)
        self.matcher = cv2.BFMatcher(cv2.NORM_L2)

    def features(self, image_bgr: np.ndarray) -> Features:
        # small crops are enlarged: catalog shots and far-away products are often under 250 px, where SIFT finds
        # too few keypoints at the scales the other image shows
        gray = cv2.cvtColor(resize_longest(image_bgr, self.config.input_size, upscale=True), cv2.COLOR_BGR2GRAY)
        size = (gray.shape[1], gray.shape[0])
        keypoints, descriptors = self.sift.detectAndCompute(gray, None)
        if not keypoints:  # OpenCV 4 returns None descriptors here, OpenCV 5 an empty array
            return Features.empty(self.descriptor_dim, size)
        points = np.array([k.pt for k in keypoints], np.float32)
        # a keypoint's score (what a catalog image keeps its strongest by) favours coarser scales: a shelf camera's
        # crops are smaller and blurrier than catalog photos, and fine-scale keypoints do not survive in them. Measured
        # with 224 kept (README "Bytes per catalog image"): response alone lost 2 of 15 tracks on the sample video,
        # response x size named the look-alike on 4 of 24 boxes; response x sqrt(size) matches 1,024 kept
        scores = np.array([k.response * np.sqrt(k.size) for k in keypoints], np.float32)
        return Features(points, descriptors.astype(np.float32), size, scores)

    def match(self, query: Features, reference: Features) -> Match:
        if len(query.keypoints) < 2 or len(reference.keypoints) < 2:
            return Match.none()
        pairs = self.matcher.knnMatch(query.descriptors.astype(np.float32), reference.descriptors.astype(np.float32), k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
        if not good:
            return Match.none()
        match = self._fit(good, query, reference)
        if match.transform is not None and implausible(match, query.image_size, reference.image_size):
            # a crop that repeats what the reference shows once (several facings of one pack, a shelf of them) sends
            # many of its keypoints to each reference keypoint, and RANSAC can fit a transform that collapses the crop
            # onto a few of them (seen: 292 matches onto 42 reference keypoints, 207 "inliers" on one point). Fitted
            # again on one match per reference keypoint, its closest, the crop's facings no longer outvote the plane.
            closest: dict[int, cv2.DMatch] = {}
            for m in good:
                if m.trainIdx not in closest or m.distance < closest[m.trainIdx].distance:
                    closest[m.trainIdx] = m
            if len(closest) < len(good):
                match = self._fit(list(closest.values()), query, reference)
        return match

    def _fit(self, good: list, query: Features, reference: Features) -> Match:
        q = query.keypoints[[m.queryIdx for m in good]]
        r = reference.keypoints[[m.trainIdx for m in good]]
        return verify_geometry(q, r, reference.image_size, self.config.ransac_threshold_px)

"""Plane geometry for shelf zones: polygons as lists of (x, y) points, normalised to the frame (0..1).

Pure functions, shared by the config's validation (a zone must be a real polygon) and the daemon's zone state
(which products stand in which zone).
"""

from __future__ import annotations

from collections.abc import Sequence

Point = tuple[float, float]


def area(polygon: Sequence[Point]) -> float:
    """Unsigned area (shoelace formula); 0 for fewer than 3 points or points on one line."""
    n = len(polygon)
    twice = sum(polygon[i][0] * polygon[(i + 1) % n][1] - polygon[(i + 1) % n][0] * polygon[i][1] for i in range(n))
    return abs(twice) / 2


def _orientation(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _on_segment(a: Point, b: Point, p: Point) -> bool:
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def segments_cross(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Whether segment ab and segment cd share a point (touching counts)."""
    o1, o2, o3, o4 = _orientation(a, b, c), _orientation(a, b, d), _orientation(c, d, a), _orientation(c, d, b)
    if ((o1 > 0) != (o2 > 0)) and ((o3 > 0) != (o4 > 0)) and 0 not in (o1, o2, o3, o4):
        return True
    return any(o == 0 and _on_segment(p, q, r) for o, p, q, r in ((o1, a, b, c), (o2, a, b, d), (o3, c, d, a), (o4, c, d, b)))


def self_intersection(polygon: Sequence[Point]) -> tuple[int, int] | None:
    """The first pair of edges (by their first point's index) that cross without being neighbours, or None.

    O(n²) over the edges: a zone has a handful of corners (the config caps them at 64).
    """
    n = len(polygon)
    edges = [(polygon[i], polygon[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # the closing edge meets the first one at point 0
            if segments_cross(*edges[i], *edges[j]):
                return i, j
    return None


def problem(polygon: Sequence[Point]) -> str | None:
    """Why `polygon` is not a usable zone outline, or None when it is one."""
    if len(polygon) < 3:
        return f"a polygon needs at least 3 corners, got {len(polygon)}"
    if len(set(polygon)) != len(polygon):
        return "two corners are the same point"
    if (crossing := self_intersection(polygon)) is not None:
        i, j = crossing
        return f"the outline crosses itself (edge {i}-{i + 1} crosses edge {j}-{(j + 1) % len(polygon)})"
    if area(polygon) < 1e-6:
        return "the corners lie on one line (the polygon has no area)"
    return None


def contains(polygon: Sequence[Point], point: Point) -> bool:
    """Whether `point` lies inside `polygon` (even-odd rule; a point on the outline may fall either way)."""
    x, y = point
    inside = False
    n = len(polygon)
    for i in range(n):
        (x1, y1), (x2, y2) = polygon[i], polygon[(i + 1) % n]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside

"""Polylines on the ground: arc length, nearest point, point and section at an arc length.

A route (the recorded camera path of a road scene, or a task's route) is an (N, 2) array of
x, y points in metres. Both the scene builder (synthetic road sections) and the simulator (route
spawns, lane metrics) measure along it, so the geometry lives here once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Projection:
    """The point of a polyline nearest to a query point."""

    arc: float  # metres along the polyline
    distance: float  # metres from the query point (the lateral deviation)


class Polyline:
    """An (N >= 2, 2) polyline with cumulative arc lengths."""

    def __init__(self, points: np.ndarray) -> None:
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if len(points) < 2:
            raise ValueError("a polyline needs at least two points")
        keep = np.concatenate([[True], np.linalg.norm(np.diff(points, axis=0), axis=1) > 1e-9])
        self.points = points[keep] if keep.sum() >= 2 else points
        self.segments = np.diff(self.points, axis=0)
        self.segment_lengths = np.maximum(np.linalg.norm(self.segments, axis=1), 1e-12)
        self._squared_lengths = self.segment_lengths**2
        self.arc = np.concatenate([[0.0], np.cumsum(self.segment_lengths)])
        self.length = float(self.arc[-1])

    def project(self, xy: np.ndarray) -> Projection:
        """The nearest point of the polyline to ``xy`` (ties: the earliest along it)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(2)
        starts, segments = self.points[:-1], self.segments
        # np.minimum/np.maximum rather than np.clip: a simulator step calls this, and np.clip's
        # Python wrapper costs more than the arithmetic on a few segments
        along = ((xy - starts) * segments).sum(axis=1) / self._squared_lengths
        t = np.minimum(np.maximum(along, 0.0), 1.0)
        nearest = starts + t[:, None] * segments
        squared = ((nearest - xy) ** 2).sum(axis=1)
        i = int(np.argmin(squared))
        return Projection(
            arc=float(self.arc[i] + t[i] * self.segment_lengths[i]),
            distance=float(np.sqrt(squared[i])),
        )

    def at(self, arc: float) -> tuple[np.ndarray, np.ndarray]:
        """(point, unit tangent) at ``arc`` metres along (clamped to the ends)."""
        points, tangents = self.points_at(np.array([arc], dtype=np.float64))
        return points[0], tangents[0]

    def points_at(self, arcs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points (K, 2) and unit tangents (K, 2) at ``arcs`` metres along (clamped to the ends);
        one vectorised lookup, for callers that need several points per simulator step."""
        arcs = np.minimum(np.maximum(arcs, 0.0), self.length)
        i = np.minimum(np.searchsorted(self.arc, arcs, side="right") - 1, len(self.arc) - 2)
        i = np.maximum(i, 0)
        t = (arcs - self.arc[i]) / self.segment_lengths[i]
        tangents = self.segments[i] / self.segment_lengths[i, None]
        return self.points[i] + (t * self.segment_lengths[i])[:, None] * tangents, tangents

    def section(self, start: float, end: float) -> np.ndarray:
        """The points from ``start`` to ``end`` metres along, both ends interpolated."""
        start, end = sorted((min(max(start, 0.0), self.length), min(max(end, 0.0), self.length)))
        inner = self.points[(self.arc > start) & (self.arc < end)]
        return np.vstack([self.at(start)[0], inner, self.at(end)[0]])

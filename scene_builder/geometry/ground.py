"""The ground along a forward capture's camera path: what kind of capture it is, which way is up,
and a height field under the path.

A camera that walks or drives forward (a dashcam, a phone carried down a street) does not circle
an area: the arena rules (a plane under an orbit, the area the cameras enclose) do not apply.
Three facts of such captures are used instead:

- the camera looks roughly along its direction of travel (an orbiting camera looks across it),
  which is how ``capture_kind`` tells a road from an arena;
- a vehicle or a walker moves over the ground, so the path is level across its direction of
  travel: up is the direction most nearly square to every travel direction, pulled towards the
  cameras' mean up only as far as a straight path leaves it undetermined (``path_up``). The mean
  camera up alone tilts with a phone held pitched down, and along a long path that tilt turns into
  metres of false climb;
- the camera rides at a nearly constant height over the ground: the ground under camera *i* is the
  camera lowered by its local height over the floor layer of the sparse points seen near it,
  smoothed along the path (``ground_heights``). The height field is then the path's ground
  profile carried sideways, square to the path (``GroundProfile``): a road that slopes along its
  length or curves is followed, its camber is not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROAD = "road"
ARENA = "arena"
# A capture is a road when the cameras' median |cos| between viewing and travel directions is
# at least this (60 degrees): an orbit looks across its path (cos near 0), a dashcam along it.
FORWARD_COS = 0.5
# Weight of the cameras' mean up against the path's level directions (``path_up``).
UP_PRIOR_WEIGHT = 0.2
# Sparse points within this many median camera steps (horizontally) of a camera measure its height.
LOCAL_STEPS = 3.0
# Points within this share of the floor depth of the floor layer count as its floor.
FLOOR_BAND = 0.3
MIN_LOCAL_POINTS = 8
# Points seen more than this many degrees below a camera's horizon are taken as ground.
STEEP_DEG = 20.0


def travel_directions(centres: np.ndarray) -> np.ndarray:
    """Unit directions of travel at each camera (central differences), zero where it stood still."""
    centres = np.asarray(centres, dtype=np.float64)
    if len(centres) < 2:
        return np.zeros_like(centres)
    step = np.gradient(centres, axis=0)
    length = np.linalg.norm(step, axis=1, keepdims=True)
    return np.divide(step, length, out=np.zeros_like(step), where=length > 1e-12)


def capture_kind(poses: np.ndarray) -> str:
    """``"road"`` when the cameras look along their direction of travel, else ``"arena"``."""
    poses = np.asarray(poses, dtype=np.float64)
    travel = travel_directions(poses[:, :3, 3])
    moving = np.linalg.norm(travel, axis=1) > 0
    if moving.sum() < 3:
        return ARENA
    forward = -poses[moving, :3, 2]
    forward /= np.linalg.norm(forward, axis=1, keepdims=True)
    cosine = np.abs(np.einsum("nd,nd->n", forward, travel[moving]))
    return ROAD if float(np.median(cosine)) >= FORWARD_COS else ARENA


def path_up(poses: np.ndarray) -> np.ndarray:
    """Up for a forward capture: square to the travel directions, on the cameras' side.

    The unit vector minimising ``mean((u . t_i)^2) - w (u . u0)^2`` (``u0`` the cameras' mean
    up, ``w = UP_PRIOR_WEIGHT``): the smallest eigenvector of ``mean(t t^T) - w u0 u0^T``. A
    curving path fixes up by itself; along a straight one the prior picks, among the directions
    square to the path, the one nearest the cameras' up (their roll, not their pitch).
    """
    poses = np.asarray(poses, dtype=np.float64)
    prior = poses[:, :3, 1].mean(0)
    prior /= max(np.linalg.norm(prior), 1e-12)
    travel = travel_directions(poses[:, :3, 3])
    travel = travel[np.linalg.norm(travel, axis=1) > 0]
    if len(travel) == 0:
        return prior
    moment = travel.T @ travel / len(travel) - UP_PRIOR_WEIGHT * np.outer(prior, prior)
    up = np.linalg.eigh(moment)[1][:, 0]
    return up if up @ prior >= 0 else -up


def steep_floor(points: np.ndarray, centres: np.ndarray, up: np.ndarray) -> float | None:
    """The cameras' depth to the ground from the points seen steeply below them, or None.

    A sparse point more than ``STEEP_DEG`` below the horizon of its nearest camera is on the
    ground (or a kerb) in a forward capture: walls and cars are seen level or above. Their median
    depth does not depend on how many points the rest of the scene holds, where the lowest dense
    layer of all points below the cameras (``align.floor_depth``) can settle on a higher layer
    when the ground has few points.
    """
    from scipy.spatial import cKDTree

    _, nearest = cKDTree(centres).query(points)
    relative = points - centres[nearest]
    along = relative @ up
    across = np.linalg.norm(relative - along[:, None] * up, axis=1)
    steep = np.degrees(np.arctan2(-along, across)) > STEEP_DEG
    if steep.sum() < MIN_LOCAL_POINTS:
        return None
    return float(np.median(-along[steep]))


def ground_heights(
    points: np.ndarray | None, centres: np.ndarray, up: np.ndarray, floor: float | None
) -> np.ndarray:
    """Each camera's height over the ground below it, in the dataset's units.

    ``floor`` is the path's overall floor depth (``align.floor_depth``); a camera with at
    least ``MIN_LOCAL_POINTS`` sparse points of that floor layer near it (within
    ``LOCAL_STEPS`` median steps, horizontally) takes their median depth, the others the overall
    one; a running median over five cameras then removes single-camera outliers. Without
    points or a floor every camera gets the path's spread along ``up`` plus one (the ground is
    unknown: the caller must say so).
    """
    centres = np.asarray(centres, dtype=np.float64)
    if points is None or floor is None or floor <= 0:
        return np.full(len(centres), 1.0)
    heights = np.full(len(centres), float(floor))
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    reach = LOCAL_STEPS * max(float(np.median(steps)) if len(steps) else 0.0, 0.5 * floor)
    for index, centre in enumerate(centres):
        relative = points - centre
        along = relative @ up
        across = np.linalg.norm(relative - along[:, None] * up, axis=1)
        local = -along[(np.abs(along + floor) < FLOOR_BAND * floor) & (across < reach)]
        if len(local) >= MIN_LOCAL_POINTS:
            heights[index] = float(np.median(local))
    if len(heights) >= 5:
        padded = np.pad(heights, 2, mode="edge")
        heights = np.median(np.lib.stride_tricks.sliding_window_view(padded, 5), axis=1)
    return heights


@dataclass
class GroundProfile:
    """The ground under a camera path, world frame: the path's x, y in capture order and the
    ground height z under each sample; the height field carries it sideways (module docstring).
    """

    path_xy: np.ndarray  # (N, 2)
    ground_z: np.ndarray  # (N,)

    def __post_init__(self) -> None:
        self.path_xy = np.asarray(self.path_xy, dtype=np.float64).reshape(-1, 2)
        self.ground_z = np.asarray(self.ground_z, dtype=np.float64).reshape(-1)
        if len(self.path_xy) != len(self.ground_z) or len(self.path_xy) == 0:
            raise ValueError("GroundProfile needs one ground height per path sample")

    @classmethod
    def from_poses(cls, poses: np.ndarray, camera_heights: np.ndarray) -> GroundProfile:
        """The profile of world-frame ``poses`` whose cameras ride ``camera_heights`` high."""
        poses = np.asarray(poses, dtype=np.float64)
        return cls(poses[:, :2, 3], poses[:, 2, 3] - np.asarray(camera_heights, dtype=float))

    def to_json(self) -> dict:
        return {
            "path_xy": np.round(self.path_xy, 5).tolist(),
            "ground_z": np.round(self.ground_z, 5).tolist(),
        }

    @classmethod
    def from_json(cls, data: dict) -> GroundProfile:
        return cls(np.array(data["path_xy"]), np.array(data["ground_z"]))

    @property
    def length(self) -> float:
        return float(np.linalg.norm(np.diff(self.path_xy, axis=0), axis=1).sum())

    def _nearest(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per query point: distance to the path polyline, its segment and position on it."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if len(self.path_xy) == 1:
            zeros = np.zeros(len(xy), np.int64)
            return np.linalg.norm(xy - self.path_xy[0], axis=1), zeros, np.zeros(len(xy))
        start, end = self.path_xy[:-1], self.path_xy[1:]
        segment = end - start
        squared = np.maximum((segment**2).sum(1), 1e-18)
        best = np.full(len(xy), np.inf)
        index = np.zeros(len(xy), np.int64)
        fraction = np.zeros(len(xy))
        for chunk in range(0, len(xy), 65536):
            part = xy[chunk : chunk + 65536]
            t = np.clip(((part[:, None] - start) * segment).sum(2) / squared, 0.0, 1.0)
            gap = np.linalg.norm(part[:, None] - (start + t[..., None] * segment), axis=2)
            nearest = gap.argmin(1)
            rows = np.arange(len(part))
            best[chunk : chunk + len(part)] = gap[rows, nearest]
            index[chunk : chunk + len(part)] = nearest
            fraction[chunk : chunk + len(part)] = t[rows, nearest]
        return best, index, fraction

    def distance(self, xy: np.ndarray) -> np.ndarray:
        """Horizontal distance from each point (..., 2) to the camera path."""
        xy = np.asarray(xy, dtype=np.float64)
        return self._nearest(xy)[0].reshape(xy.shape[:-1])

    def height(self, xy: np.ndarray) -> np.ndarray:
        """Ground height z at each point (..., 2): the profile at the nearest point of the path."""
        xy = np.asarray(xy, dtype=np.float64)
        _, index, fraction = self._nearest(xy)
        if len(self.ground_z) == 1:
            return np.full(xy.shape[:-1], self.ground_z[0])
        z = self.ground_z[index] * (1 - fraction) + self.ground_z[index + 1] * fraction
        return z.reshape(xy.shape[:-1])

    def resampled(self, spacing: float) -> np.ndarray:
        """The path's x, y (K, 2) resampled every ``spacing`` along its length, ends kept."""
        steps = np.linalg.norm(np.diff(self.path_xy, axis=0), axis=1)
        arc = np.concatenate([[0.0], np.cumsum(steps)])
        if arc[-1] <= 0:
            return self.path_xy[:1].copy()
        count = max(2, int(np.ceil(arc[-1] / spacing)) + 1)
        where = np.linspace(0.0, arc[-1], count)
        return np.stack([np.interp(where, arc, self.path_xy[:, k]) for k in range(2)], axis=1)


# A car, metres (length, width, height), and the camera height that stands for 1.5 m when the
# scene has no metric scale: the car is then sized in camera heights.
CAR_SIZE = (4.5, 1.8, 1.5)
ASSUMED_CAMERA_HEIGHT = 1.5


@dataclass
class RoadPrior:
    """What the geometry of a road scene is built on: the ground profile under the camera path,
    each camera's height over it, and whether the world is in metres.

    ``metre`` is the world length standing for a metre: 1 in a metric scene, else the median
    camera height over ``ASSUMED_CAMERA_HEIGHT`` (a capture camera is carried about 1.5 m high),
    so every length the road stages take is given in metres either way.
    """

    profile: GroundProfile
    camera_heights: np.ndarray
    metric: bool

    def __post_init__(self) -> None:
        self.camera_heights = np.asarray(self.camera_heights, dtype=np.float64).reshape(-1)

    @property
    def camera_height(self) -> float:
        return float(np.median(self.camera_heights))

    @property
    def metre(self) -> float:
        return 1.0 if self.metric else self.camera_height / ASSUMED_CAMERA_HEIGHT

    def vehicle_size(self) -> dict[str, float]:
        """The car's length, width and height in world units."""
        length, width, height = (round(v * self.metre, 4) for v in CAR_SIZE)
        return {"vehicle_length": length, "vehicle_width": width, "vehicle_height": height}

    def to_json(self) -> dict:
        return {
            **self.profile.to_json(),
            "camera_heights": np.round(self.camera_heights, 5).tolist(),
            "metric": self.metric,
        }

    @classmethod
    def from_json(cls, data: dict) -> RoadPrior:
        return cls(GroundProfile.from_json(data), np.array(data["camera_heights"]), data["metric"])

    @classmethod
    def from_dataset(cls, dataset) -> RoadPrior | None:
        """The prior recorded by ``align`` for a forward capture; None for an arena."""
        alignment = dataset.extras.get("alignment", {})
        heights = alignment.get("camera_heights")
        if alignment.get("scene_kind") != ROAD or heights is None:
            return None
        if len(heights) != len(dataset.frames):
            return None
        heights = np.asarray(heights, dtype=np.float64)
        profile = GroundProfile.from_poses(dataset.poses, heights)
        return cls(profile, heights, bool(alignment.get("metric")))

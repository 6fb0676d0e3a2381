"""Metric scale from the GPS positions in the images' EXIF (``--scale gps``).

A phone or a camera with a receiver writes each photo's position into the standard EXIF GPS IFD
(latitude, longitude as degrees/minutes/seconds, ``GPSHPositioningError`` in metres when it knows
its accuracy); Mapillary's app also writes ``MAPLatitude``/``MAPLongitude`` and
``MAPGPSAccuracyMeters`` as JSON in the ImageDescription tag, read when the GPS IFD is missing.
Frames decoded from a video carry no EXIF at all.

The positions go to metres on the local tangent plane around their mean (equirectangular: at
street scale, a few hundred metres, its error is far below the receiver's). A phone's fix is good
to about 5 m, so the scale is not fitted by least squares on the positions (a handful of bad fixes
would pull it): it is the median, over every pair of frames farther apart by GPS than
``PAIR_NOISE_FACTOR`` times that accuracy, of GPS distance over camera distance, both measured
horizontally (GPS altitude is poorer still). A fix repeated unchanged on consecutive frames is
stale (the receiver did not update while the camera moved) and only its first frame is used. The
fit residual is the median distance between each GPS position and its camera after the best
horizontal rotation and shift at that scale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scene_builder.errors import DatasetError

GPS_IFD = 0x8825
IMAGE_DESCRIPTION = 270
# GPS IFD tags: latitude ref and value, longitude ref and value, horizontal error (metres).
LATITUDE_REF, LATITUDE, LONGITUDE_REF, LONGITUDE, POSITIONING_ERROR = 1, 2, 3, 4, 0x1F
EARTH_RADIUS = 6_371_008.8  # metres, the mean radius
# A phone's fix when the image does not say how good it is, metres.
DEFAULT_ACCURACY = 5.0
MIN_ACCURACY = 1.0
# Pairs of frames closer than this many accuracies by GPS do not measure the scale: at 4 accuracies
# one pair's distance is off by about a third, and the median over many pairs by much less.
PAIR_NOISE_FACTOR = 4.0
MIN_GPS_FRAMES = 3
MIN_FAR_PAIRS = 3
SCALE_FLAGS = "--scale camera-height=H or --scale distance=I,J,D"


@dataclass(frozen=True)
class GpsFix:
    latitude: float
    longitude: float
    accuracy: float | None  # metres, when the image says


def _degrees(value, ref) -> float:
    degrees, minutes, seconds = (float(part) for part in value)
    sign = -1.0 if str(ref).strip().upper() in ("S", "W") else 1.0
    return sign * (degrees + minutes / 60 + seconds / 3600)


def _valid(latitude: float, longitude: float) -> bool:
    if not (np.isfinite(latitude) and np.isfinite(longitude)):
        return False
    inside = abs(latitude) <= 90 and abs(longitude) <= 180
    return inside and (latitude, longitude) != (0.0, 0.0)  # (0, 0): a receiver without a fix


def _from_gps_ifd(gps) -> GpsFix | None:
    try:
        latitude = _degrees(gps[LATITUDE], gps.get(LATITUDE_REF, "N"))
        longitude = _degrees(gps[LONGITUDE], gps.get(LONGITUDE_REF, "E"))
        error = gps.get(POSITIONING_ERROR)
        accuracy = float(error) if error is not None else None
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    return GpsFix(latitude, longitude, accuracy) if _valid(latitude, longitude) else None


def _from_mapillary(description) -> GpsFix | None:
    try:
        tags = json.loads(description)
        latitude, longitude = float(tags["MAPLatitude"]), float(tags["MAPLongitude"])
        accuracy = tags.get("MAPGPSAccuracyMeters")
        accuracy = float(accuracy) if accuracy is not None else None
    except (TypeError, ValueError, KeyError, AttributeError):
        return None
    return GpsFix(latitude, longitude, accuracy) if _valid(latitude, longitude) else None


def read_fix(path: str | Path) -> GpsFix | None:
    """The GPS position in one image's EXIF (GPS IFD, else Mapillary's JSON), or None."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            exif = image.getexif()
            gps = exif.get_ifd(GPS_IFD)
            description = exif.get(IMAGE_DESCRIPTION)
    except (OSError, UnidentifiedImageError) as error:
        raise DatasetError(f"{path}: not a readable image ({error})") from None
    return (_from_gps_ifd(gps) if gps else None) or _from_mapillary(description)


@dataclass
class GpsTrack:
    """The frames with a fresh GPS fix and their horizontal positions, metres (east, north)."""

    indices: np.ndarray  # (K,) frame indices
    east_north: np.ndarray  # (K, 2)
    accuracy: float  # metres: the median accuracy the images give, else DEFAULT_ACCURACY
    tagged: int  # frames with any fix, stale repeats included

    @property
    def span(self) -> float:
        """The largest distance between two fixes, metres."""
        points = self.east_north
        return float(np.max(np.linalg.norm(points[:, None] - points[None], axis=2)))

    def check_span(self, where: str | Path) -> None:
        """Refuse a track too short against its accuracy to measure a scale."""
        first, second = np.triu_indices(len(self.east_north), 1)
        apart = np.linalg.norm(self.east_north[first] - self.east_north[second], axis=1)
        if int((apart > PAIR_NOISE_FACTOR * self.accuracy).sum()) < MIN_FAR_PAIRS:
            raise DatasetError(
                f"{where}: --scale gps: the GPS positions span {self.span:.1f} m, too short "
                f"against their {self.accuracy:.1f} m accuracy to measure the scale (need "
                f"fixes {PAIR_NOISE_FACTOR * self.accuracy:.0f} m apart); use {SCALE_FLAGS}"
            )


def read_track(image_paths: list[Path], where: str | Path, from_video: bool = False) -> GpsTrack:
    """The GPS track of a dataset's images, in frame order; a one-line error when no image, or
    fewer than ``MIN_GPS_FRAMES``, carry a fresh fix (``check_span`` judges its length)."""
    fixes = [read_fix(path) for path in image_paths]
    tagged = [i for i, fix in enumerate(fixes) if fix is not None]
    if not tagged:
        source = (
            "frames decoded from a video carry no EXIF, so no GPS"
            if from_video
            else f"none of its {len(fixes)} images has a GPS position in its EXIF"
        )
        raise DatasetError(f"{where}: --scale gps: {source}; use {SCALE_FLAGS}")
    fresh: list[int] = []
    for index in tagged:  # a fix repeated on the next frames is stale: keep its first frame
        place = (fixes[index].latitude, fixes[index].longitude)
        if not fresh or place != (fixes[fresh[-1]].latitude, fixes[fresh[-1]].longitude):
            fresh.append(index)
    if len(fresh) < MIN_GPS_FRAMES:
        raise DatasetError(
            f"{where}: --scale gps: only {len(fresh)} of {len(fixes)} images carry a distinct GPS "
            f"position (need {MIN_GPS_FRAMES}); use {SCALE_FLAGS}"
        )
    latitude = np.radians([fixes[i].latitude for i in fresh])
    longitude = np.radians([fixes[i].longitude for i in fresh])
    east = EARTH_RADIUS * np.cos(latitude.mean()) * (longitude - longitude.mean())
    north = EARTH_RADIUS * (latitude - latitude.mean())
    known = [fixes[i].accuracy for i in fresh if fixes[i].accuracy and fixes[i].accuracy > 0]
    accuracy = max(float(np.median(known)) if known else DEFAULT_ACCURACY, MIN_ACCURACY)
    return GpsTrack(np.array(fresh), np.stack([east, north], axis=1), accuracy, len(tagged))


@dataclass
class GpsFit:
    """The scale (metres per dataset unit) fitted to a GPS track, and how well it fits."""

    scale: float
    pairs: int  # frame pairs that measured it
    residual: float  # median horizontal distance, metres, camera to GPS after the fit
    largest_residual: float  # the same, at the frame that fits worst
    track: GpsTrack = field(repr=False)

    def to_json(self) -> dict:
        return {
            "frames": len(self.track.indices),
            "tagged": self.track.tagged,
            "accuracy_m": round(self.track.accuracy, 3),
            "span_m": round(self.track.span, 3),
            "pairs": self.pairs,
            "scale": self.scale,
            "residual_m": round(self.residual, 3),
            "largest_residual_m": round(self.largest_residual, 3),
        }


def horizontal(centres: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Camera centres (N, 3) on the plane square to ``up``, as (N, 2) in a right-handed basis
    (x, y, up), matching (east, north, up)."""
    up = np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
    seed = np.eye(3)[int(np.argmin(np.abs(up)))]
    x_axis = np.cross(seed, up)
    x_axis /= np.linalg.norm(x_axis)
    y_axis = np.cross(up, x_axis)
    return np.stack([centres @ x_axis, centres @ y_axis], axis=1)


def pair_ratios(cameras: np.ndarray, gps: np.ndarray, accuracy: float) -> np.ndarray:
    """GPS distance over camera distance for every pair farther apart by GPS than
    ``PAIR_NOISE_FACTOR`` accuracies (and apart at all in the cameras)."""
    first, second = np.triu_indices(len(gps), 1)
    by_gps = np.linalg.norm(gps[first] - gps[second], axis=1)
    by_camera = np.linalg.norm(cameras[first] - cameras[second], axis=1)
    far = (by_gps > PAIR_NOISE_FACTOR * accuracy) & (by_camera > 0)
    return by_gps[far] / by_camera[far]


def fit_scale(centres: np.ndarray, up: np.ndarray, track: GpsTrack, where: str | Path) -> GpsFit:
    """The scale putting the cameras' horizontal path on the GPS track (module docstring)."""
    cameras = horizontal(np.asarray(centres, dtype=np.float64)[track.indices], up)
    ratios = pair_ratios(cameras, track.east_north, track.accuracy)
    if len(ratios) < MIN_FAR_PAIRS:  # the far pairs are where the cameras stood still
        raise DatasetError(
            f"{where}: --scale gps: only {len(ratios)} pairs of frames far apart by GPS moved "
            f"apart in the camera poses (need {MIN_FAR_PAIRS}); use {SCALE_FLAGS}"
        )
    scale = float(np.median(ratios))
    residuals = _residuals(scale * cameras, track.east_north)
    return GpsFit(scale, len(ratios), float(np.median(residuals)), float(residuals.max()), track)


def _residuals(cameras: np.ndarray, gps: np.ndarray) -> np.ndarray:
    """Distances after the rotation and shift (no scale, no mirror) that best map ``cameras``
    onto ``gps`` in least squares (the 2-D Kabsch solution)."""
    centred_c, centred_g = cameras - cameras.mean(0), gps - gps.mean(0)
    u, _, vt = np.linalg.svd(centred_g.T @ centred_c)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    return np.linalg.norm(centred_c @ rotation.T - centred_g, axis=1)


def gps_scale(dataset, centres: np.ndarray, up: np.ndarray) -> GpsFit:
    """The GPS scale of a posed dataset whose camera centres (in its current frame) are given."""
    from scene_builder.capture import MANIFEST_FILE

    from_video = False
    manifest = Path(dataset.root) / MANIFEST_FILE
    if manifest.is_file():
        try:
            from_video = json.loads(manifest.read_text()).get("source_kind") == "video"
        except (OSError, json.JSONDecodeError):
            from_video = False
    paths = [frame.image_path for frame in dataset.frames]
    track = read_track(paths, dataset.root, from_video=from_video)
    track.check_span(dataset.root)
    return fit_scale(centres, up, track, dataset.root)


def check_source(source: Path) -> GpsTrack:
    """Refuse ``--scale gps`` before any stage runs when the input cannot give a GPS scale: a
    video (no EXIF), or images without enough GPS positions far enough apart."""
    from scene_builder.capture import open_source

    found = open_source(source)
    track = read_track(found.files, found.path, from_video=found.kind == "video")
    track.check_span(found.path)
    return track

"""Structure-from-motion settings: the typed options (the CLI is generated from them) and the
profile that turns them into concrete COLMAP settings for a video or for a set of photos.

Two kinds of capture want different trade-offs. A video's frames are ordered and close together:
every neighbour overlaps its next frames heavily, so SIFT on the frame as it is (no 2x upsampling,
COLMAP's ``first_octave`` 0: about a quarter of the extraction time and a quarter of the features
to match) and plain matching (no guided re-matching, a third of the matching time) still give
far more inliers than mapping needs, and a window of the next few frames plus loop candidates is
all the matching a forward camera can use. A small set of unordered photos is matched
exhaustively with upsampled SIFT and guided matching: there each pair is worth more effort,
since the mapper has no ordering to fall back on.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.config_cli import option
from scene_builder.errors import PoseError

MATCHERS = ("auto", "sequential", "exhaustive")
# "auto": the global mapper, then incremental seeds while frames stay unregistered.
MAPPERS = ("auto", "incremental", "global")
PROFILES = ("auto", "video", "photos")
SWITCHES = ("auto", "on", "off")
CAMERA_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")


@dataclass(frozen=True)
class Profile:
    """The settings one kind of capture gets unless an option names its own value."""

    first_octave: int  # -1: SIFT doubles the image first (finer, more, slower features)
    guided_matching: bool
    sequential_overlap: int
    # Tracks the global mapper's positioning keeps per frame (0: all). Its solve runs to an
    # iteration cap, so its time follows the tracks it is given; the frames' positions need a
    # few hundred well-spread tracks each, and retriangulation afterwards restores every point.
    tracks_per_view: int


PROFILE_SETTINGS = {
    "video": Profile(
        first_octave=0, guided_matching=False, sequential_overlap=8, tracks_per_view=200
    ),
    "photos": Profile(
        first_octave=-1, guided_matching=True, sequential_overlap=10, tracks_per_view=0
    ),
}


@dataclass(frozen=True)
class SfmConfig:
    """Structure-from-motion settings; the defaults suit phone videos on a laptop CPU."""

    matcher: str = option(
        "auto",
        "sequential (+ loop closure) for videos, exhaustive for small unordered sets; auto: "
        "sequential under the video profile, else exhaustive up to --exhaustive-up-to images",
        choices=MATCHERS,
    )
    profile: str = option(
        "auto",
        "video: SIFT without upsampling, plain matching, an 8-frame window (fast, for ordered "
        "frames); photos: upsampled SIFT and guided matching; auto: video for a video's frames",
        choices=PROFILES,
    )
    camera_model: str = option(
        "SIMPLE_RADIAL", "COLMAP camera model shared by all frames", choices=CAMERA_MODELS
    )
    max_image_size: int = option(1024, "longest side, in pixels, features are extracted at")
    max_features: int = option(4096, "SIFT features per image")
    first_octave: int | None = option(
        None,
        "SIFT's first octave: -1 doubles the image first (more, finer features; about 4x the "
        "extraction and far more matching time), 0 does not (default: the profile's)",
    )
    guided_matching: str = option(
        "auto",
        "re-match each pair under its two-view geometry (about 3x the matching time, more "
        "mapping seeds register every frame of a fragile capture); auto: on for photos",
        choices=SWITCHES,
    )
    sequential_overlap: int | None = option(
        None, "frames each frame is matched with, going forward (default: the profile's)"
    )
    loop_keyframes: int = option(30, "evenly spaced frames matched with each other (loop closure)")
    exhaustive_up_to: int = option(40, "largest photo count matched exhaustively by auto")
    min_registered: float = option(
        0.3, "fail unless the largest model holds at least this share of the frames"
    )
    mapping_attempts: int = option(
        3,
        "seeds tried per mapper: the global mapper's while it finds no model, the incremental "
        "mapper's while frames stay unregistered",
    )
    mapper: str = option(
        "auto",
        "auto: COLMAP's global mapper, then incremental seeds while frames stay unregistered",
        choices=MAPPERS,
    )
    num_threads: int = option(-1, "threads of feature extraction and matching (-1: all cores)")
    seed: int = option(0, "seed of the mapper's RANSAC")

    def validate(self) -> None:
        for flag, value, allowed in (
            ("--matcher", self.matcher, MATCHERS),
            ("--mapper", self.mapper, MAPPERS),
            ("--profile", self.profile, PROFILES),
            ("--guided-matching", self.guided_matching, SWITCHES),
            ("--camera-model", self.camera_model, CAMERA_MODELS),
        ):
            if value not in allowed:
                raise PoseError(f"{flag} {value}: must be one of {', '.join(allowed)}")
        if self.max_image_size < 64 or self.max_features < 64:
            raise PoseError("--max-image-size and --max-features must be at least 64")
        if self.first_octave is not None and self.first_octave not in (-1, 0, 1):
            raise PoseError(f"--first-octave {self.first_octave}: must be -1, 0 or 1")
        if self.sequential_overlap is not None and self.sequential_overlap < 1:
            raise PoseError(f"--sequential-overlap {self.sequential_overlap}: must be at least 1")
        if self.mapping_attempts < 1:
            raise PoseError(f"mapping_attempts {self.mapping_attempts}: must be at least 1")
        if not 0.0 < self.min_registered <= 1.0:
            raise PoseError(f"--min-registered {self.min_registered}: must be in (0, 1]")


@dataclass(frozen=True)
class Resolved:
    """The concrete settings one run uses: the options with the profile's values filled in."""

    profile: str
    matcher: str
    first_octave: int
    guided_matching: bool
    sequential_overlap: int
    # Tracks the global mapper's positioning keeps per frame (0: all). Its solve runs to an
    # iteration cap, so its time follows the tracks it is given; the frames' positions need a
    # few hundred well-spread tracks each, and retriangulation afterwards restores every point.
    tracks_per_view: int

    def describe(self) -> str:
        octave = "upsampled" if self.first_octave < 0 else f"first octave {self.first_octave}"
        guided = "guided" if self.guided_matching else "plain"
        window = f", {self.sequential_overlap}-frame window" if self.matcher == "sequential" else ""
        tracks = (
            f", {self.tracks_per_view} tracks per frame in global positioning"
            if self.tracks_per_view
            else ""
        )
        return (
            f"{self.profile} settings: SIFT {octave}, {guided} {self.matcher} matching"
            f"{window}{tracks}"
        )


def resolve(config: SfmConfig, count: int, from_video: bool) -> Resolved:
    """The settings for ``count`` frames: the video profile for a video's frames (``auto``),
    sequential matching for any video whatever its length, exhaustive for a small photo set."""
    profile = config.profile
    if profile == "auto":
        profile = "video" if from_video else "photos"
    defaults = PROFILE_SETTINGS[profile]
    matcher = config.matcher
    if matcher == "auto":
        small = count <= config.exhaustive_up_to
        matcher = "exhaustive" if profile == "photos" and small else "sequential"
    guided = {"on": True, "off": False}.get(config.guided_matching, defaults.guided_matching)
    return Resolved(
        profile=profile,
        matcher=matcher,
        first_octave=defaults.first_octave if config.first_octave is None else config.first_octave,
        guided_matching=guided,
        sequential_overlap=config.sequential_overlap or defaults.sequential_overlap,
        tracks_per_view=defaults.tracks_per_view,
    )

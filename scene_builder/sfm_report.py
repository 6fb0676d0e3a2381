"""What structure from motion found, as one report: printed in full by ``driveenv poses`` and
``driveenv build-scene`` (models, mapping tries, warnings, settings and time per stage), and
stored in ``transforms.json`` so that a re-run with the same settings can say so."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

# Largest relative change of the focal length from its EXIF value before the report warns
# (EXIF focal lengths of phone videos are rough: a correct solve can differ by a quarter).
FOCAL_TOLERANCE = 0.35


@dataclass
class SfmReport:
    """What the mapper found: the kept model's registration and error, and every model's size."""

    root: Path
    total: int
    registered: int
    mean_reprojection_error: float
    model_sizes: list[int]
    failed_frames: list[str]
    matcher: str
    points: int
    mapper: str = "incremental"  # the mapper whose model was kept
    mapping_tries: list[str] = field(default_factory=list)  # each try's largest model
    skipped: bool = False
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # CPU time, all threads
    warnings: list[str] = field(default_factory=list)
    settings: str = ""  # the profile's concrete settings, in words
    pairs: int = 0  # image pairs matched

    @classmethod
    def stored(cls, root: Path, previous: dict) -> SfmReport:
        """The report an earlier run stored in ``transforms.json``, marked as skipped."""
        names = {f.name for f in fields(cls)} - {"root", "skipped"}
        return cls(root=root, skipped=True, **{k: v for k, v in previous.items() if k in names})

    def summary(self) -> str:
        if self.skipped:
            return f"{self.root}: poses already recovered with these settings"
        lines = [
            f"{self.root}: registered {self.registered}/{self.total} frames "
            f"({self.matcher} matching, {self.mapper} mapper), {self.points} points, "
            f"mean reprojection error {self.mean_reprojection_error:.2f} px",
        ]
        if self.settings:
            lines.append(f"  {self.settings}; {self.pairs} pairs matched")
        if self.seconds:
            stages = ", ".join(f"{stage} {s:.0f} s" for stage, s in self.seconds.items())
            cpu = sum(self.cpu_seconds.values())
            lines.append(
                f"  time: {stages} ({sum(self.seconds.values()):.0f} s in all, "
                f"{cpu:.0f} s of CPU time)"
            )
        if len(self.model_sizes) > 1:
            sizes = ", ".join(str(s) for s in self.model_sizes)
            lines.append(
                f"  {len(self.model_sizes)} models came out (frames: {sizes}); kept the largest"
            )
        if self.mapping_tries:
            lines.append(f"  mapping tries: {'; '.join(self.mapping_tries)}")
        if self.failed_frames:
            lines.append(f"  not registered: {', '.join(self.failed_frames)}")
        lines.extend(f"  warning: {warning}" for warning in self.warnings)
        return "\n".join(lines)


def focal_warnings(models: dict, prior: float | None) -> list[str]:
    """A warning when the solved focal length strays far (35%) from the one in the images' EXIF.

    EXIF focal lengths are good to a few percent; a mapper that moves far from one has usually
    bent the scene (forward motion along a street is the classic case).
    """
    if prior is None or not models:
        return []
    largest = max(models.values(), key=lambda model: model.num_reg_images())
    solved = float(next(iter(largest.cameras.values())).mean_focal_length())
    if abs(solved / prior - 1.0) <= FOCAL_TOLERANCE:
        return []
    return [
        f"the focal length moved from {prior:.0f} px (EXIF) to {solved:.0f} px; the "
        "reconstruction may be bent: try a larger --max-image-size or more frames"
    ]

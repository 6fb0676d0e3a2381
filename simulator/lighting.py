"""Lighting per episode: a named preset, or a random blend of two, plus optional photometric jitter.

What a preset looks like under each camera is ``scene_builder.lighting``'s business (one table,
one formula); this module only chooses, per episode, which presets and in what blend, and the
optional augmentation. ``random`` picks two distinct presets and a blend weight ``t``; the field
camera blends their appearance codes and a mesh camera their gain and gamma, so either camera
sees the same condition. Photometric augmentation multiplies the image by a random brightness
and per-channel colour gain and scales its contrast about mid-grey; its parameters are drawn
once per episode. The choice is fixed for the whole episode and reported in ``info["lighting"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from scene_builder.lighting import scene_lighting
from simulator.errors import ConfigError

__all__ = ["EpisodeLighting", "choose_lighting", "scene_lighting"]

BRIGHTNESS_RANGE = (0.7, 1.3)
CONTRAST_RANGE = (0.8, 1.2)
COLOUR_RANGE = (0.9, 1.1)


@dataclass(frozen=True)
class EpisodeLighting:
    """The lighting of one episode: which presets in what blend, the augmentation, a name."""

    name: str  # a preset name, or "random:<a>+<b>@<t>"
    blend: tuple[tuple[str, float], ...]  # (preset name, weight) pairs summing to 1
    brightness: float = 1.0  # photometric augmentation (1 = none)
    contrast: float = 1.0
    colour: np.ndarray | None = None  # (3,) per-channel gain, None = none

    def augment(self, rgb: np.ndarray) -> np.ndarray:
        """Apply the episode's photometric augmentation to float images (..., 3) in [0, 1]."""
        if self.brightness == 1.0 and self.contrast == 1.0 and self.colour is None:
            return rgb
        out = (rgb - 0.5) * self.contrast + 0.5
        out = out * self.brightness
        if self.colour is not None:
            out = out * self.colour.astype(np.float32)
        return np.clip(out, 0.0, 1.0)


def choose_lighting(
    setting: str,
    presets: Mapping,  # the scene's preset names (scene_builder.bundle.SceneBundle.lighting)
    rng: np.random.Generator,
    augmentation: bool = False,
) -> EpisodeLighting:
    """The lighting of a new episode for ``setting`` (a preset name or ``"random"``)."""
    names = sorted(presets)
    if setting == "random":
        if len(names) < 2:
            first, second, t = names[0], names[0], 0.0
        else:
            i, j = rng.choice(len(names), size=2, replace=False)
            first, second, t = names[i], names[j], float(rng.uniform())
        blend = ((first, 1.0 - t), (second, t))
        name = f"random:{first}+{second}@{t:.2f}"
    elif setting in presets:
        blend, name = ((setting, 1.0),), setting
    else:
        raise ConfigError(f"lighting={setting!r}: choose 'random' or one of {', '.join(names)}")
    if not augmentation:
        return EpisodeLighting(name, blend)
    return EpisodeLighting(
        name=name + "+aug",
        blend=blend,
        brightness=float(rng.uniform(*BRIGHTNESS_RANGE)),
        contrast=float(rng.uniform(*CONTRAST_RANGE)),
        colour=rng.uniform(*COLOUR_RANGE, size=3),
    )

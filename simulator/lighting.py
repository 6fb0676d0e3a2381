"""Lighting per episode: a named preset, or a random blend of two, plus optional photometric jitter.

A scene's presets exist twice: as appearance codes of the radiance field (what the field
renderer uses) and as a photometric ``gain * c ** gamma`` approximation in the bundle (what the
mesh renderer uses). ``random`` picks two distinct presets and a blend weight ``t`` and
interpolates both the codes and the gain/gamma, so either renderer sees the same condition.
Photometric augmentation multiplies the image by a random brightness and per-channel colour
gain and scales its contrast about mid-grey; its parameters are drawn once per episode.
The choice is fixed for the whole episode and reported in ``info["lighting"]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.errors import ConfigError

BRIGHTNESS_RANGE = (0.7, 1.3)
CONTRAST_RANGE = (0.8, 1.2)
COLOUR_RANGE = (0.9, 1.1)


@dataclass(frozen=True)
class EpisodeLighting:
    """The lighting of one episode: what both renderers need, and a name for ``info``."""

    name: str  # a preset name, or "random:<a>+<b>@<t>"
    blend: tuple[tuple[str, float], ...]  # (preset name, weight) pairs summing to 1
    gain: np.ndarray  # (3,) mesh approximation
    gamma: float
    brightness: float = 1.0  # photometric augmentation (1 = none)
    contrast: float = 1.0
    colour: np.ndarray | None = None  # (3,) per-channel gain, None = none

    def code(self, presets: dict[str, np.ndarray]) -> np.ndarray:
        """The appearance code: the blend of the field's preset codes."""
        return sum(weight * np.asarray(presets[name], np.float32) for name, weight in self.blend)

    def shade_mesh_colours(self, rgb: np.ndarray) -> np.ndarray:
        """Capture-lit colours (..., 3) in [0, 1] under this lighting's gain/gamma."""
        if self.gamma == 1.0 and np.all(self.gain == 1.0):
            return rgb
        shaded = np.clip(rgb, 0.0, 1.0)
        if self.gamma != 1.0:
            shaded = shaded ** np.float32(self.gamma)
        return np.clip(self.gain.astype(np.float32) * shaded, 0.0, 1.0)

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
    presets: dict,  # name -> scene_builder.bundle.LightingPreset (gain, gamma)
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
    gain = sum(w * np.asarray(presets[n].gain, np.float64) for n, w in blend)
    gamma = float(sum(w * presets[n].gamma for n, w in blend))
    lighting = EpisodeLighting(name, blend, np.asarray(gain), gamma)
    if not augmentation:
        return lighting
    return EpisodeLighting(
        name=name + "+aug",
        blend=blend,
        gain=lighting.gain,
        gamma=gamma,
        brightness=float(rng.uniform(*BRIGHTNESS_RANGE)),
        contrast=float(rng.uniform(*CONTRAST_RANGE)),
        colour=rng.uniform(*COLOUR_RANGE, size=3),
    )

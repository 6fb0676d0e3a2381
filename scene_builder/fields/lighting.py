"""Global photometric changes: the lighting augmentation and the named lighting presets.

A change is ``rgb -> clip(gain * rgb) ** gamma`` with a per-channel gain (exposure times white
balance) and a gamma. During ``--lighting-augmentation`` every training image also appears
under a random change with its own appearance code, so the code space learns to express such
changes; afterwards each named preset's code is fitted to reproduce its change (see
``scene_builder.train.fit_code``). The same (gain, gamma) pairs let a mesh renderer approximate a
preset without the field.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Photometric:
    gain: tuple[float, float, float]
    gamma: float

    def apply(self, rgb: torch.Tensor) -> torch.Tensor:
        return apply_photometric(rgb, torch.tensor(self.gain), torch.tensor(self.gamma))

    def to_json(self) -> dict:
        return {"gain": list(self.gain), "gamma": self.gamma}


PRESETS: dict[str, Photometric] = {
    "capture": Photometric((1.0, 1.0, 1.0), 1.0),
    "bright": Photometric((1.5, 1.5, 1.5), 0.9),
    "dim": Photometric((0.55, 0.55, 0.55), 1.0),
    "warm": Photometric((1.15, 1.0, 0.75), 1.0),
    "night": Photometric((0.3, 0.33, 0.45), 1.2),
}


def apply_photometric(rgb: torch.Tensor, gain: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """``clip(gain * rgb) ** gamma`` with broadcasting: gain (..., 3), gamma (..., 1) or scalar."""
    return (rgb * gain).clamp(1e-6, 1.0) ** gamma


def random_photometric(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random changes for augmentation: exposure x0.25..x2, white balance +-20%, gamma 0.75..1.35."""
    exposure = torch.exp(torch.empty(count, 1).uniform_(-1.386, 0.693, generator=generator))
    balance = torch.exp(0.18 * torch.randn(count, 3, generator=generator))
    gamma = torch.empty(count, 1).uniform_(0.75, 1.35, generator=generator)
    return exposure * balance, gamma

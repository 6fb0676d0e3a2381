"""The lighting augmentation of field training.

During ``--lighting-augmentation`` every training image also appears under a random global
photometric change (``scene_builder.lighting``'s formula) with its own appearance code, so the
code space learns to express such changes; afterwards each named preset's code is fitted to
reproduce its change (``scene_builder.train.fit_code``).
"""

from __future__ import annotations

import torch

from scene_builder.lighting import PRESETS, apply_photometric

__all__ = ["PRESETS", "apply_photometric", "random_photometric"]


def random_photometric(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random changes for augmentation: exposure x0.25..x2, white balance +-20%, gamma 0.75..1.35."""
    exposure = torch.exp(torch.empty(count, 1).uniform_(-1.386, 0.693, generator=generator))
    balance = torch.exp(0.18 * torch.randn(count, 3, generator=generator))
    gamma = torch.empty(count, 1).uniform_(0.75, 1.35, generator=generator)
    return exposure * balance, gamma

"""Observation encoders shared by every policy: a small CNN for 64x64 images, an MLP path for state.

``SmallCNN`` is the one image encoder of the project (the diffusion agents use it too). It is
sized for a laptop CPU: four stride-2 3x3 convolutions (32-64-64-64 channels) take a 64x64 image
to 4x4, then a linear layer gives ``features_dim`` features. That is several times cheaper per
image than SB3's NatureCNN (Mnih et al. 2015) at 64x64, and it accepts any input size of at least
16 pixels (adaptive pooling to 4x4 at the end).

``ObservationEncoder`` is an SB3 features extractor for the simulator's observations (a
``gymnasium.spaces.Dict`` with ``state`` and/or image keys such as ``rgb`` and ``depth``, or a
plain ``Box``): image keys of the same size are stacked on the channel axis and go through one
``SmallCNN``; vector keys are flattened and concatenated after it. SB3 has already divided uint8
images by 255; float images (depth in metres) are divided by their space's upper bound when that
is finite, so every input reaches the network in about [0, 1].
"""

from __future__ import annotations

import math

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

IMAGE_CHANNELS_MAX = 4  # an axis of at most this size next to two larger ones is the channel axis


class SmallCNN(nn.Module):
    """Image encoder for 64x64 inputs: ``(B, C, H, W)`` floats in [0, 1] -> ``(B, features_dim)``."""

    def __init__(self, in_channels: int = 3, features_dim: int = 128) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.features_dim = features_dim
        channels = (32, 64, 64, 64)
        layers: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            layers += [nn.Conv2d(previous, width, kernel_size=3, stride=2, padding=1), nn.ReLU()]
            previous = width
        layers += [nn.AdaptiveAvgPool2d(4), nn.Flatten()]
        self.convolutions = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(previous * 16, features_dim), nn.ReLU())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.convolutions(images))


def image_layout(space: spaces.Box) -> tuple[int, int, int, bool] | None:
    """``(channels, height, width, channels_first)`` if ``space`` holds images, else None.

    Images are 2-D (H, W) or 3-D with a small channel axis first or last; SB3 transposes uint8
    images to channels-first before the policy sees them, float images (depth) may be either.
    """
    shape = space.shape
    if len(shape) == 2 and min(shape) >= 8:
        return 1, shape[0], shape[1], True
    if len(shape) != 3:
        return None
    if shape[0] <= IMAGE_CHANNELS_MAX and min(shape[1:]) >= 8:
        return shape[0], shape[1], shape[2], True
    if shape[2] <= IMAGE_CHANNELS_MAX and min(shape[:2]) >= 8:
        return shape[2], shape[0], shape[1], False
    return None


def _input_scale(space: spaces.Box) -> float:
    """Divisor that brings a float image to about [0, 1] (uint8 ones SB3 has already divided)."""
    if space.dtype == np.uint8:
        return 1.0
    high = float(np.max(space.high))
    return high if math.isfinite(high) and high > 0 else 1.0


class ObservationEncoder(BaseFeaturesExtractor):
    """SB3 features extractor: image keys -> one ``SmallCNN``; vector keys -> flattened, concatenated."""

    def __init__(self, observation_space: spaces.Space, cnn_features_dim: int = 128) -> None:
        subspaces = (
            dict(observation_space.spaces)
            if isinstance(observation_space, spaces.Dict)
            else {None: observation_space}
        )
        image_keys, vector_keys = [], []
        channels, size = 0, None
        for key, space in sorted(subspaces.items(), key=lambda item: str(item[0])):
            layout = image_layout(space) if isinstance(space, spaces.Box) else None
            if layout is None:
                vector_keys.append(key)
                continue
            if size is not None and layout[1:3] != size:
                raise ValueError(
                    f"image observations differ in size: {key!r} is {layout[1:3]}, others {size}"
                )
            size = layout[1:3]
            channels += layout[0]
            image_keys.append(key)
        vector_dim = sum(int(np.prod(subspaces[key].shape)) for key in vector_keys)
        features_dim = vector_dim + (cnn_features_dim if image_keys else 0)
        super().__init__(observation_space, features_dim)
        self.image_keys = image_keys
        self.vector_keys = vector_keys
        self._layouts = {key: image_layout(subspaces[key]) for key in image_keys}
        self._scales = {key: _input_scale(subspaces[key]) for key in image_keys}
        self.cnn = SmallCNN(channels, cnn_features_dim) if image_keys else None

    def _select(self, observations, key):
        return observations if key is None else observations[key]

    def images(self, observations) -> torch.Tensor:
        """All image keys as one ``(B, C, H, W)`` float tensor in about [0, 1]."""
        stacked = []
        for key in self.image_keys:
            image = self._select(observations, key).float()
            _, _, _, channels_first = self._layouts[key]
            if image.dim() == 3:  # (B, H, W)
                image = image.unsqueeze(1)
            elif not channels_first:
                image = image.permute(0, 3, 1, 2)
            stacked.append(image / self._scales[key])
        return torch.cat(stacked, dim=1)

    def forward(self, observations) -> torch.Tensor:
        parts = []
        if self.cnn is not None:
            parts.append(self.cnn(self.images(observations)))
        for key in self.vector_keys:
            value = self._select(observations, key)
            parts.append(value.float().reshape(value.shape[0], -1))
        return torch.cat(parts, dim=1)

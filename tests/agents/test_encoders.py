"""The shared image/state encoder: shapes, layouts and that it learns from pixels."""

import numpy as np
import pytest
import torch
from gymnasium import spaces

from agents.encoders import ObservationEncoder, SmallCNN


def test_small_cnn_maps_64x64_images_to_features():
    cnn = SmallCNN(in_channels=3, features_dim=32)
    out = cnn(torch.rand(5, 3, 64, 64))
    assert out.shape == (5, 32)
    assert sum(p.numel() for p in cnn.parameters()) < 200_000  # small enough for a CPU


def test_observation_encoder_stacks_images_and_appends_state():
    space = spaces.Dict(
        {
            "rgb": spaces.Box(0, 255, (3, 64, 64), np.uint8),  # channels-first, as SB3 passes it
            "depth": spaces.Box(0.0, 20.0, (64, 64, 1), np.float32),  # channels-last float
            "state": spaces.Box(-np.inf, np.inf, (6,), np.float32),
        }
    )
    encoder = ObservationEncoder(space, cnn_features_dim=16)
    assert encoder.image_keys == ["depth", "rgb"] and encoder.vector_keys == ["state"]
    assert encoder.cnn.in_channels == 4
    obs = {
        "rgb": torch.rand(2, 3, 64, 64),
        "depth": torch.full((2, 64, 64, 1), 20.0),
        "state": torch.arange(12, dtype=torch.float32).reshape(2, 6),
    }
    images = encoder.images(obs)
    assert images.shape == (2, 4, 64, 64)
    assert torch.allclose(images[:, 0], torch.ones(2, 64, 64))  # depth scaled by its bound
    features = encoder(obs)
    assert features.shape == (2, 16 + 6)
    assert torch.equal(features[:, 16:], obs["state"])  # state passes through untouched


@pytest.mark.training
def test_small_cnn_learns_where_a_bright_square_is():
    """A regression from pixels to the position of a square must fit: the encoder sees space."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    positions = rng.integers(0, 56, size=(48, 2))
    images = torch.zeros(48, 1, 64, 64)
    for i, (row, col) in enumerate(positions):
        images[i, 0, row : row + 8, col : col + 8] = 1.0
    target = torch.as_tensor(positions / 56.0, dtype=torch.float32)
    model = torch.nn.Sequential(SmallCNN(1, 64), torch.nn.Linear(64, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(50):
        loss = torch.nn.functional.mse_loss(model(images), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.3 * target.var(0).mean().item()  # predicting the mean gives 1.0

"""Denoiser networks: an MLP for vectors and a conditional 1-D temporal U-Net for action sequences.

Both have the signature ``model(x_t, t, cond) -> eps_hat`` used by ``generative.diffusion``.
The U-Net follows Chi et al.'s Diffusion Policy design: 1-D convolutions over the time axis of an
action chunk, residual blocks whose features are modulated (FiLM: per-channel scale and bias)
by an embedding of the diffusion timestep concatenated with the conditioning vector.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from generative.errors import GenerativeError


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sin/cos features of a (float) timestep."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim % 2:
            raise GenerativeError(f"time embedding size must be even, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half) / max(half - 1, 1))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t.float()[:, None] * self.freqs[None]
        return torch.cat([args.sin(), args.cos()], dim=-1)


def _time_mlp(time_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(
        SinusoidalEmbedding(time_dim),
        nn.Linear(time_dim, out_dim),
        nn.Mish(),
        nn.Linear(out_dim, out_dim),
    )


class MLPDenoiser(nn.Module):
    """Residual MLP on [x, time embedding, cond]; x is (B, D) or (B, H, A) (flattened inside)."""

    def __init__(
        self,
        data_dim: int,
        cond_dim: int = 0,
        hidden: int = 256,
        depth: int = 3,
        time_dim: int = 64,
    ) -> None:
        super().__init__()
        self.data_dim, self.cond_dim = data_dim, cond_dim
        self.time = _time_mlp(time_dim, time_dim)
        self.inp = nn.Linear(data_dim + time_dim + cond_dim, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.Mish())
            for _ in range(depth)
        )
        self.out = nn.Linear(hidden, data_dim)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        shape = x.shape
        parts = [x.reshape(shape[0], -1), self.time(t)]
        if self.cond_dim:
            if cond is None:
                raise GenerativeError("this denoiser is conditional: pass cond")
            parts.append(cond)
        h = self.inp(torch.cat(parts, dim=-1))
        for block in self.blocks:
            h = h + block(h)
        return self.out(h).reshape(shape)


class _Conv1dBlock(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int) -> None:
        super().__init__(
            nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2),
            nn.GroupNorm(min(groups, c_out), c_out),
            nn.Mish(),
        )


class FiLMResidualBlock(nn.Module):
    """Two conv blocks; the first one's output is scaled and shifted by the conditioning."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.conv1 = _Conv1dBlock(c_in, c_out, kernel, groups)
        self.conv2 = _Conv1dBlock(c_out, c_out, kernel, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * c_out))
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, bias = self.film(cond)[..., None].chunk(2, dim=1)
        h = self.conv1(x) * (1 + scale) + bias
        return self.conv2(h) + self.skip(x)


class ConditionalUnet1D(nn.Module):
    """Temporal U-Net over action chunks (B, H, A), FiLM-conditioned on time + ``cond`` (B, C).

    H must be divisible by 2 ** (len(down_dims) - 1).
    """

    def __init__(
        self,
        action_dim: int,
        cond_dim: int = 0,
        down_dims: tuple[int, ...] = (64, 128, 256),
        kernel_size: int = 5,
        groups: int = 8,
        time_dim: int = 64,
    ) -> None:
        super().__init__()
        self.cond_dim = cond_dim
        self.levels = len(down_dims)
        self.time = _time_mlp(time_dim, time_dim)
        film_dim = time_dim + cond_dim
        dims = [action_dim, *down_dims]

        def block(c_in, c_out):
            return FiLMResidualBlock(c_in, c_out, film_dim, kernel_size, groups)

        self.down = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            last = i == len(down_dims) - 1
            self.down.append(
                nn.ModuleList(
                    [
                        block(c_in, c_out),
                        block(c_out, c_out),
                        nn.Identity() if last else nn.Conv1d(c_out, c_out, 3, stride=2, padding=1),
                    ]
                )
            )
        self.mid = nn.ModuleList([block(dims[-1], dims[-1]), block(dims[-1], dims[-1])])
        self.up = nn.ModuleList()
        reversed_dims = list(reversed(down_dims))
        for c_out, c_in in zip(reversed_dims[1:], reversed_dims[:-1], strict=True):
            self.up.append(
                nn.ModuleList(
                    [
                        block(2 * c_in, c_out),
                        block(c_out, c_out),
                        nn.ConvTranspose1d(c_out, c_out, 4, stride=2, padding=1),
                    ]
                )
            )
        self.final = nn.Sequential(
            _Conv1dBlock(down_dims[0], down_dims[0], kernel_size, groups),
            nn.Conv1d(down_dims[0], action_dim, 1),
        )

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        if x.ndim != 3:
            raise GenerativeError(
                f"the U-Net expects (B, horizon, action_dim), got {tuple(x.shape)}"
            )
        horizon = x.shape[1]
        if horizon % (2 ** (self.levels - 1)):
            raise GenerativeError(
                f"horizon {horizon} must be divisible by {2 ** (self.levels - 1)} for this U-Net"
            )
        film = self.time(t)
        if self.cond_dim:
            if cond is None:
                raise GenerativeError("this denoiser is conditional: pass cond")
            film = torch.cat([film, cond], dim=-1)
        h = x.transpose(1, 2)
        skips = []
        for block1, block2, downsample in self.down:
            h = block2(block1(h, film), film)
            skips.append(h)
            h = downsample(h)
        for mid in self.mid:
            h = mid(h, film)
        for block1, block2, upsample in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            h = upsample(block2(block1(h, film), film))
        return self.final(h).transpose(1, 2)

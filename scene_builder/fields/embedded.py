"""The embedded radiance field: factorised feature planes and lines, built for a laptop CPU.

Why this design (speeds and scores from benchmarks/field_bird.py, in benchmarks/RESULTS.md):
- On a CPU a field's cost is *samples per ray x channels*: ``grid_sample`` slows with every
  channel it reads, elementwise ops are memory-bound, and a small matrix product is cheap by
  comparison; a hash grid with an MLP in plain PyTorch, and nerfacto, train far slower per ray.
  So the field is TensoRF's vector-matrix factorisation (Chen et al., 2022: three axis-aligned
  planes times three lines, one ``grid_sample`` call each for density and colour channels
  together), decoded by a tiny view-dependent MLP.
- Samples: a *density proxy* (the field's own density baked into a dilated 128^3 grid, exactly,
  by an einsum over the factors, refreshed every few dozen steps) replaces a proposal network.
  Looking it up is one nearest-cell read per coarse sample; its weights (blurred along the ray)
  pick ``fine_samples`` intervals per ray by inverse-CDF resampling (mip-NeRF 360 style), and
  only those go through the field with gradients. The proxy also skips empty space when rendering.
- Sizes: every per-sample tensor is read and written a dozen times per step, so a step costs
  about samples x (grid channels + decoder width). Smaller colour factors and decoder score
  nearly the same per step and run faster, so they win per second; the default is the middle
  size, which keeps geometry close to the larger field's. Gathers, ``embedding_bag`` with a
  hand-written backward, or a backward split across threads were no faster than ``grid_sample``.
- Per-image appearance codes (NeRF-W's idea, Martin-Brualla et al., 2021) act as a global
  photometric change of the composited colour (per-channel gain, gamma and offset: a phone's
  auto-exposure and white balance), not as a decoder input: as a decoder input the codes drift
  into view-specific detail and held-out frames rendered with the mean code score much worse.
  ``appearance_model="decoder"`` keeps the NeRF-W variant (and loads fields written before the
  option). A total-variation penalty keeps the grids smooth.
- Learning rates: the grid factors need a large step (0.2 with Adam); a tenth of it leaves the
  scene a blurred cloud after hundreds of steps.
- Unbounded scenes are contracted (L-inf, as nerfacto); bounded scenes clip rays to a box.
- ``surface_depth`` (from mesh ray casting) replaces the proxy search: a few samples in a thin
  band around the known surface, the simulator's fast path. Batching small cameras into one
  call costs nothing per ray.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from scene_builder.errors import FieldError
from scene_builder.fields.base import FIELD_FILE, RadianceField
from scene_builder.fields.embedded_meta import checked_meta
from scene_builder.fields.rays import SceneBounds

APPEARANCE_MODELS = ("photometric", "decoder")
# (plane axes, line axis) of the three vector-matrix modes; plane axes are (W, H) of the grid.
MODES = (((0, 1), 2), ((0, 2), 1), ((1, 2), 0))


@dataclass
class EmbeddedConfig:
    """Size and sampling of the embedded field (all resolutions in grid cells per axis)."""

    resolution: int = 192
    initial_resolution: int = 64
    density_components: int = 4
    # 10 colour components and a 32-wide decoder: nearly the score per step of 12 and 64 at a
    # lower cost per step, so a time budget buys more steps (module docstring, "Sizes").
    color_components: int = 10
    hidden_width: int = 32
    appearance_dim: int = 8
    # "photometric": the code only sets a global per-channel gain, gamma and offset of the
    # rendered colour (a camera's exposure and white balance); "decoder": the code also enters
    # the colour decoder (NeRF-W), which can express local lighting but lets codes absorb
    # view-specific detail, so held-out frames rendered with the mean code score worse.
    appearance_model: str = "photometric"
    density_shift: float = -10.0
    density_scale: float = 25.0
    proxy_resolution: int = 128
    coarse_samples: int = 48
    fine_samples: int = 12
    render_coarse_samples: int = 64
    render_fine_samples: int = 16
    surface_samples: int = 4
    surface_band_cells: float = 1.0
    init_scale: float = 0.1

    @classmethod
    def from_json(cls, data: dict) -> EmbeddedConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known.setdefault("appearance_model", "decoder")  # fields written before the option
        return cls(**known)

    def to_json(self) -> dict:
        return asdict(self)


def composite_weights(optical_depth: torch.Tensor) -> torch.Tensor:
    """Compositing weights T_k * alpha_k from per-interval optical depths sigma_k * delta_k (R, K)."""
    passed = torch.cumsum(optical_depth, dim=1)
    return torch.exp(optical_depth - passed) - torch.exp(-passed)


@dataclass
class RayGeometry:
    """Code-independent part of a ray batch: compositing weights (R,K), colour features (R*K,F),
    view encodings per ray (R,9) and interval midpoints t (R,K)."""

    weights: torch.Tensor
    features: torch.Tensor
    view: torch.Tensor
    t: torch.Tensor


def spherical_harmonics_2(directions: torch.Tensor) -> torch.Tensor:
    """Real spherical harmonics up to degree 2 of unit vectors: (..., 3) -> (..., 9)."""
    x, y, z = directions.unbind(-1)
    return torch.stack(
        [
            torch.full_like(x, 0.28209479),
            0.48860251 * y,
            0.48860251 * z,
            0.48860251 * x,
            1.09254843 * x * y,
            1.09254843 * y * z,
            0.31539157 * (3 * z * z - 1),
            1.09254843 * x * z,
            0.54627421 * (x * x - y * y),
        ],
        dim=-1,
    )


class EmbeddedField(nn.Module):
    """Density and colour at points, plus the sampling and compositing of rays."""

    def __init__(self, config: EmbeddedConfig, bounds: SceneBounds, num_codes: int, seed: int = 0):
        super().__init__()
        if config.appearance_model not in APPEARANCE_MODELS:
            raise FieldError(
                f"appearance_model {config.appearance_model!r}: expected one of "
                f"{', '.join(APPEARANCE_MODELS)}"
            )
        self.config = config
        self.bounds = bounds
        generator = torch.Generator().manual_seed(seed)
        channels = config.density_components + config.color_components
        n = config.initial_resolution
        self.planes = nn.Parameter(
            config.init_scale * torch.randn(3, channels, n, n, generator=generator)
        )
        self.lines = nn.Parameter(
            config.init_scale * torch.randn(3, channels, n, 1, generator=generator)
        )
        # The first decoder layer is split: features vary per sample, but the view direction and
        # the appearance code are the same for all samples of a ray, so their part is computed
        # once per ray and broadcast (saves a concatenation and a copy per sample).
        self.feature_layer = nn.Linear(3 * config.color_components, config.hidden_width)
        decoder_code = config.appearance_dim if config.appearance_model == "decoder" else 0
        self.ray_layer = nn.Linear(9 + decoder_code, config.hidden_width, bias=False)
        self.output_layer = nn.Linear(config.hidden_width, 3)
        # code -> (log gain, log gamma, offset) per channel; identity while the code is zero.
        self.photometric_layer = (
            nn.Linear(config.appearance_dim, 9, bias=False) if decoder_code == 0 else None
        )
        with torch.no_grad():
            for layer in (self.feature_layer, self.ray_layer, self.output_layer):
                bound = 1 / math.sqrt(layer.in_features)
                layer.weight.uniform_(-bound, bound, generator=generator)
                if layer.bias is not None:
                    layer.bias.zero_()
            if self.photometric_layer is not None:
                # Small, not zero: with zero codes and zero weights neither gets a gradient.
                self.photometric_layer.weight.normal_(0.0, 0.01, generator=generator)
        self.codes = nn.Parameter(torch.zeros(num_codes, config.appearance_dim))
        # The sky: what a ray that leaves the field sees, a colour that varies smoothly with the
        # ray's direction (degree-2 spherical harmonics, 27 numbers). A forward capture has sky
        # in every frame; with one constant background colour the field paints the sky's
        # gradient with density in the far shell, floaters that the mesh and the depth inherit.
        self.background = nn.Parameter(torch.zeros(3))
        self.sky = nn.Parameter(torch.zeros(9, 3))
        proxy = min(config.proxy_resolution, config.resolution)  # finer than the grid is waste
        self.register_buffer("proxy", torch.full((proxy, proxy, proxy), 1e3))

    # ----------------------------------------------------------------- grids
    @property
    def resolution(self) -> int:
        return self.planes.shape[-1]

    def grid_features(self, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Grid coordinates (S, 3) in [-1, 1] -> raw density (S,) and colour features (S, 3*Rc)."""
        plane_coords = torch.stack([grid[:, list(axes)] for axes, _ in MODES]).unsqueeze(1)
        line_coords = torch.stack([grid[:, axis] for _, axis in MODES])
        line_coords = torch.stack([torch.zeros_like(line_coords), line_coords], dim=-1).unsqueeze(1)
        plane = F.grid_sample(self.planes, plane_coords, align_corners=True)[:, :, 0]
        line = F.grid_sample(self.lines, line_coords, align_corners=True)[:, :, 0]
        product = plane * line  # (3, C, S)
        rd = self.config.density_components
        density = product[:, :rd].sum(dim=(0, 1))
        color = product[:, rd:].reshape(-1, product.shape[-1]).t()
        return density, color

    def activate_density(self, raw: torch.Tensor) -> torch.Tensor:
        """Density per unit of normalised length."""
        return self.config.density_scale * F.softplus(raw + self.config.density_shift)

    @torch.no_grad()
    def upsample(self, resolution: int) -> None:
        """Resample planes and lines to ``resolution`` cells per axis (coarse-to-fine)."""
        self.planes = nn.Parameter(
            F.interpolate(
                self.planes.data, size=(resolution, resolution), mode="bilinear", align_corners=True
            )
        )
        self.lines = nn.Parameter(
            F.interpolate(
                self.lines.data, size=(resolution, 1), mode="bilinear", align_corners=True
            )
        )

    @torch.no_grad()
    def refresh_proxy(self) -> None:
        """Bake the density into the proxy grid exactly (einsum over the factors), dilated."""
        size = self.proxy.shape[0]
        rd = self.config.density_components
        planes = F.interpolate(
            self.planes[:, :rd], size=(size, size), mode="bilinear", align_corners=True
        )
        lines = F.interpolate(
            self.lines[:, :rd], size=(size, 1), mode="bilinear", align_corners=True
        )[..., 0]
        # planes[m] is indexed (r, H, W) = (r, second plane axis, first plane axis).
        raw = torch.einsum("rba,rc->abc", planes[0], lines[0])
        raw += torch.einsum("rca,rb->abc", planes[1], lines[1])
        raw += torch.einsum("rcb,ra->abc", planes[2], lines[2])
        density = self.activate_density(raw)
        self.proxy.copy_(density.permute(2, 1, 0))  # stored (z, y, x) as grid_sample reads it

    def proxy_density(self, grid: torch.Tensor) -> torch.Tensor:
        """Proxy density of the nearest proxy cell at grid coordinates (..., 3) -> (...).

        Nearest, not trilinear: the proxy only ranks where along a ray to sample (and its
        weights are widened to neighbouring bins anyway), and an index gather costs a fraction of
        ``grid_sample``'s trilinear read.
        """
        size = self.proxy.shape[0]
        cell = ((grid.clamp(-1, 1) + 1) * (0.5 * (size - 1))).round_().long()
        x, y, z = cell.unbind(-1)
        return self.proxy.reshape(-1)[(z * size + y) * size + x]

    # ------------------------------------------------------------- sampling
    def _to_spacing(self, t: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        """Ray parameter -> spacing coordinate (linear inside the unit cube, disparity beyond)."""
        if self.bounds.bounded:
            return t
        tau = t * length / self.bounds.scale
        return torch.where(tau < 1, tau, 2 - 1 / tau.clamp_min(1e-6))

    def _from_spacing(self, g: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        if self.bounds.bounded:
            return g
        tau = torch.where(g < 1, g, 1 / (2 - g).clamp_min(1e-6))
        return tau * self.bounds.scale / length

    def _points(self, origins, directions, t):
        """Grid coordinates of points at ``t`` (R, K) along the rays."""
        origins = self.bounds.normalise(origins)
        directions = directions / self.bounds.scale
        return self.bounds.grid_coordinates(
            torch.addcmul(origins[:, None], directions[:, None], t[..., None])
        )

    def sample_intervals(
        self,
        origins: torch.Tensor,
        directions: torch.Tensor,
        coarse: int,
        fine: int,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pick ``fine`` intervals per ray from the proxy's weights: (midpoint t, length t), (R, K)."""
        rays = origins.shape[0]
        length = directions.norm(dim=-1, keepdim=True)
        t_near, t_far = self.bounds.ray_interval(origins, directions)
        g_near = self._to_spacing(t_near[:, None], length)
        g_far = self._to_spacing(t_far[:, None], length)
        to_t = lambda s: self._from_spacing(g_near + (g_far - g_near) * s, length)  # noqa: E731
        edges_t = to_t(torch.linspace(0, 1, coarse + 1).expand(rays, -1))
        with torch.no_grad():
            width = edges_t[:, 1:] - edges_t[:, :-1]
            if generator is not None:  # stratified: a random point in each bin
                jitter = torch.rand(rays, coarse, generator=generator)
            else:
                jitter = torch.full((rays, coarse), 0.5)
            # Jitter in spacing coordinates (uniform in disparity far away), as the bins are.
            mids = to_t((torch.arange(coarse) + jitter) / coarse)
            density = self.proxy_density(self._points(origins, directions, mids))
            step = width * (length / self.bounds.scale)
            weights = composite_weights(density * step)
            # Widen each bin's weight to its neighbours (mip-NeRF 360's blur of the proposal
            # histogram): the proxy is coarser than the field, a surface may sit one bin later.
            padded = F.pad(weights[:, None], (1, 1))[:, 0]
            weights = torch.maximum(torch.maximum(padded[:, :-2], padded[:, 1:-1]), padded[:, 2:])
            pdf = weights + 1e-3 * weights.sum(dim=1, keepdim=True) / coarse + 1e-8
            cdf = torch.cumsum(pdf, dim=1)
            cdf = torch.cat([torch.zeros(rays, 1), cdf / cdf[:, -1:]], dim=1)
            if generator is not None:
                offset = torch.rand(rays, 1, generator=generator)
            else:
                offset = torch.full((rays, 1), 0.5)
            u = ((torch.arange(fine + 1) + offset - 0.5) / fine).clamp(0, 1)
            u[:, 0], u[:, -1] = 0.0, 1.0
            bin_index = torch.searchsorted(cdf, u.contiguous(), right=True).clamp(1, coarse)
            below = cdf.gather(1, bin_index - 1)
            above = cdf.gather(1, bin_index)
            fraction = ((u - below) / (above - below).clamp_min(1e-12)).clamp(0, 1)
            fine_s = (bin_index - 1 + fraction) / coarse
        fine_edges = to_t(fine_s)
        mids = 0.5 * (fine_edges[:, 1:] + fine_edges[:, :-1])
        return mids, fine_edges[:, 1:] - fine_edges[:, :-1]

    def surface_intervals(
        self, directions: torch.Tensor, surface_t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``surface_samples`` intervals in a thin band around a known surface at ``surface_t``."""
        # World size of a full-resolution cell (the inner cube is half the grid when contracted).
        cell = (2.0 if self.bounds.bounded else 4.0) * self.bounds.scale / self.resolution
        half = self.config.surface_band_cells * cell / directions.norm(dim=-1)
        k = self.config.surface_samples
        edges = surface_t[:, None] + half[:, None] * torch.linspace(-1, 1, k + 1)
        edges = edges.clamp_min(self.bounds.near / directions.norm(dim=-1, keepdim=True))
        return 0.5 * (edges[:, 1:] + edges[:, :-1]), edges[:, 1:] - edges[:, :-1]

    # ---------------------------------------------------------- compositing
    def geometry(
        self, origins: torch.Tensor, directions: torch.Tensor, t: torch.Tensor, delta: torch.Tensor
    ) -> RayGeometry:
        """Everything about the intervals that does not depend on the appearance code."""
        length = directions.norm(dim=-1, keepdim=True)
        grid = self._points(origins, directions, t).reshape(-1, 3)
        raw, features = self.grid_features(grid)
        optical = self.activate_density(raw).reshape(t.shape) * (
            delta * (length / self.bounds.scale)
        )
        weights = composite_weights(optical)
        return RayGeometry(weights, features, spherical_harmonics_2(directions / length), t)

    def shade(
        self, geometry: RayGeometry, codes: torch.Tensor, surface_t: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode colours with per-ray ``codes`` (R, D) and composite: rgb (R,3), depth (R,), acc (R,).

        Without ``surface_t`` the weight left after the last sample goes to the learned
        background and depth is the expected depth of what was hit. With ``surface_t`` (the mesh
        says the ray ends there) the weight left goes to the surface: its depth and the colour
        of the sample nearest to it.
        """
        weights, t = geometry.weights, geometry.t
        rays, k = t.shape
        decoder_input = geometry.view
        if self.photometric_layer is None:  # NeRF-W: the code enters the decoder
            decoder_input = torch.cat([geometry.view, codes], dim=-1)
        per_ray = self.ray_layer(decoder_input)
        hidden = self.feature_layer(geometry.features).reshape(rays, k, -1) + per_ray[:, None]
        rgb = torch.sigmoid(self.output_layer(torch.relu(hidden)))
        accumulation = weights.sum(dim=1)
        color = (weights[..., None] * rgb).sum(dim=1)
        depth = (weights * t).sum(dim=1)
        rest = (1 - accumulation).clamp_min(0)
        if surface_t is not None:
            color = color + rest[:, None] * rgb[:, k // 2]
            return self.photometric(color, codes), depth + rest * surface_t, accumulation
        sky = torch.sigmoid(self.background + geometry.view @ self.sky)
        color = color + rest[:, None] * sky
        return self.photometric(color, codes), depth / accumulation.clamp_min(1e-6), accumulation

    def photometric(self, color: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """The codes' global colour change of composited colours (R, 3): gain * c ** gamma + offset.

        Applied to the composited colour, as a camera's exposure and white balance act on the
        image, so the change costs nine numbers per ray and no per-sample work. Not clipped to
        [0, 1] here: a clip would stop the gradient of an over-bright training pixel (renderers
        clip).
        """
        if self.photometric_layer is None:
            return color
        log_gain, log_gamma, offset = self.photometric_layer(codes).split(3, dim=-1)
        return torch.exp(log_gain) * color.clamp_min(1e-4) ** torch.exp(log_gamma) + offset

    def composite(self, origins, directions, t, delta, codes, surface_t=None):
        """``shade(geometry(...))``: rgb (R,3), z-depth (R,), accumulation (R,)."""
        return self.shade(self.geometry(origins, directions, t, delta), codes, surface_t)

    def total_variation(self) -> torch.Tensor:
        """Mean squared difference of neighbouring plane cells (the smoothness penalty)."""
        planes = self.planes
        dx = (planes[..., :, 1:] - planes[..., :, :-1]).pow(2).mean()
        dy = (planes[..., 1:, :] - planes[..., :-1, :]).pow(2).mean()
        dl = (self.lines[:, :, 1:] - self.lines[:, :, :-1]).pow(2).mean()
        return dx + dy + dl


class EmbeddedRadianceField(RadianceField):
    """The embedded backend behind the render API, loaded from a FIELD_DIR."""

    backend_name = "embedded"

    def __init__(self, root: Path, meta: dict[str, Any], model: EmbeddedField):
        super().__init__(root, meta)
        self.model = model.eval()
        self.lighting_presets = {
            name: torch.tensor(code, dtype=torch.float32)
            for name, code in meta.get("presets", {}).items()
        }

    @property
    def appearance_dim(self) -> int:
        return self.model.config.appearance_dim

    @classmethod
    def load(cls, root: Path, meta: dict[str, Any]) -> EmbeddedRadianceField:
        where = Path(root) / FIELD_FILE
        checked = checked_meta(where, meta, EmbeddedConfig)
        config = EmbeddedConfig.from_json(checked["config"])
        bounds = SceneBounds.from_json(checked["bounds"])
        checkpoint = Path(root) / checked["checkpoint"]
        num_codes = checked["num_codes"]
        state = load_checkpoint(checkpoint)
        model = EmbeddedField(config, bounds, num_codes)
        try:
            model.upsample(state["planes"].shape[-1])
            # fields saved before the sky existed had a constant background: a zero sky
            state.setdefault("sky", torch.zeros_like(model.sky))
            model.load_state_dict(state)
        except (KeyError, RuntimeError, AttributeError) as error:
            raise FieldError(
                f"{checkpoint}: does not match {where} ({str(error).splitlines()[0]})"
            ) from None
        return cls(root, meta, model)

    def _render_rays(self, origins, directions, codes, surface_t):
        model = self.model
        rgb = torch.empty(origins.shape[0], 3)
        depth = torch.empty(origins.shape[0])
        accumulation = torch.empty(origins.shape[0])
        hit = torch.zeros(origins.shape[0], dtype=torch.bool)
        if surface_t is not None:
            hit = torch.isfinite(surface_t) & (surface_t > 0)
        if hit.any():
            t, delta = model.surface_intervals(directions[hit], surface_t[hit])
            out = model.composite(
                origins[hit], directions[hit], t, delta, codes[hit], surface_t[hit]
            )
            rgb[hit], depth[hit], accumulation[hit] = out
        free = ~hit
        if free.any():
            o, d = origins[free], directions[free]
            config = model.config
            t, delta = model.sample_intervals(
                o, d, config.render_coarse_samples, config.render_fine_samples
            )
            rgb[free], depth[free], accumulation[free] = model.composite(
                o, d, t, delta, codes[free]
            )
        return rgb.clamp_(0.0, 1.0), depth, accumulation


def load_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """torch.load a state dict, turning every failure into one FieldError line."""
    if not path.is_file():
        raise FieldError(f"{path}: checkpoint missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        raise FieldError(f"{path}: corrupt checkpoint ({type(error).__name__})") from None
    if not isinstance(state, dict):
        raise FieldError(f"{path}: corrupt checkpoint (not a state dict)")
    return state

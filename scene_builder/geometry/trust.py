"""Which rendered depth is fused: trusted pixels, and the ground prior (``scene_builder.mesh``
step 2)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from scene_builder.camera import world_directions
from scene_builder.geometry.types import DepthView

if TYPE_CHECKING:
    from scene_builder.mesh import MeshConfig


def ground_area(poses: np.ndarray):
    """The area the cameras circled: the Delaunay triangulation of their x, y positions (a
    ``find_simplex(xy) >= 0`` test); ground beyond it was only seen at grazing angles.

    None when the cameras do not enclose an area (fewer than three, or along a line, as when
    walking down a street: the hull's area under 1% of the square of their extent).
    """
    from scipy.spatial import Delaunay, QhullError

    xy = np.asarray(poses)[:, :2, 3]
    if len(xy) < 3:
        return None
    try:
        area = Delaunay(xy)
    except QhullError:
        return None
    corners = xy[area.simplices]
    a, b = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    if 0.5 * np.abs(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).sum() < 0.01 * np.ptp(xy, 0).max() ** 2:
        return None
    return area


def ground_prior_depth(view: DepthView, area, config: MeshConfig) -> np.ndarray:
    """The depth to fuse for one view, with the ground prior (``scene_builder.mesh`` step 2).

    A pixel whose rendered surface lies at or below the plane z = 0 gets the plane's depth
    when its ray meets the plane inside ``area`` (ground: the field rendered nothing above it)
    and 0 elsewhere (beyond the circled area a table may end); a pixel whose surface is above
    the plane keeps the field's depth when trusted and gets 0 (unknown) when not.
    """
    directions = world_directions(view.camera_to_world, view.intrinsics, *view.size)
    origin = view.camera_to_world[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        plane_t = np.where(directions[..., 2] < 0, -origin[2] / directions[..., 2], np.inf)
    finite = np.isfinite(plane_t)
    inside = np.zeros_like(finite)
    crossing = origin[:2] + plane_t[finite][:, None] * directions[finite][:, :2]
    inside[finite] = area.find_simplex(crossing) >= 0
    below = finite & (view.depth >= plane_t)
    depth = np.where(trusted_mask(view, config) & ~below, view.depth, 0.0)
    return np.where(below & inside, plane_t, depth).astype(np.float32)


def fusion_view(view: DepthView, area, config: MeshConfig) -> DepthView:
    """The view with the depth that is fused and baked: ``ground_prior_depth`` when ``area`` (the
    cameras' circle) is given, else the trusted depth."""
    if area is not None:
        depth = ground_prior_depth(view, area, config)
    else:
        depth = np.where(trusted_mask(view, config), view.depth, 0.0).astype(np.float32)
    return replace(view, depth=depth, opacity=None, surface_opacity=None)


def trusted_mask(view: DepthView, config: MeshConfig) -> np.ndarray:
    """Where the view's depth may be fused (step 1 of the module docstring)."""
    trusted = view.depth > 0
    if view.opacity is not None:
        trusted &= view.opacity >= config.min_accumulation
    if view.surface_opacity is not None:
        trusted &= view.surface_opacity >= config.min_surface_opacity
    return trusted

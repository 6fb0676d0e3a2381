"""Geometry extraction against an analytic field with known geometry (tests/scene_builder/fake_fields.py).

A table top at z = 0 (1.0 x 0.8 m) with an 8 x 6 x 10 cm box on it, cameras orbiting at table
height: the shape of the bird capture, with exact answers.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import trimesh

from scene_builder.errors import MeshError
from scene_builder.mesh import Geometry, MeshConfig, extract_geometry, fill_small_holes
from scene_builder.raycast import MeshCaster
from tests.scene_builder.fake_fields import BIRD, FLOOR, BoxesField, orbit_cameras

CONFIG = MeshConfig(
    resolution=128,
    render_scale=1.0,
    virtual_views=10,
    virtual_size=48,
    map_resolution=0.005,
    ground_tolerance=0.0075,
    target_faces=8000,
)


@pytest.fixture(scope="module")
def geometry():
    poses, intrinsics = orbit_cameras()
    return extract_geometry(BoxesField(), poses, intrinsics, (64, 48), CONFIG)


def cast(mesh: trimesh.Trimesh, rays: np.ndarray) -> np.ndarray:
    return MeshCaster.from_trimesh(mesh).cast(rays).t_hit


def test_ground_is_flat_at_z0(geometry):
    voxel = geometry.stats["voxel_size"]
    xy = np.array([[x, y] for x in (-0.15, 0.0, 0.15) for y in (-0.15, 0.15)])
    rays = np.concatenate([xy, np.full((len(xy), 1), 0.5), np.tile([0, 0, -1.0], (len(xy), 1))], 1)
    heights = 0.5 - cast(geometry.collision, rays)
    assert np.abs(heights).max() < 0.25 * voxel


def test_horizontal_rays_at_3cm_from_every_side_hit_the_box(geometry):
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    directions = np.stack([-np.cos(angles), -np.sin(angles), np.zeros_like(angles)], 1)
    origins = np.stack([0.3 * np.cos(angles), 0.3 * np.sin(angles), np.full_like(angles, 0.03)], 1)
    distance = cast(geometry.collision, np.concatenate([origins, directions], 1))
    hit = origins + distance[:, None] * directions
    low, high = np.array(BIRD[0]), np.array(BIRD[1])
    outside = np.maximum(np.maximum(low - hit, hit - high), 0).max(axis=1)
    assert np.isfinite(distance).all()
    assert outside.max() < 1.5 * geometry.stats["voxel_size"]  # on the box's surface


def test_mesh_is_cropped_cleaned_and_within_face_budget(geometry):
    assert len(geometry.collision.faces) <= CONFIG.target_faces * 1.05
    labels = trimesh.graph.connected_component_labels(
        geometry.collision.face_adjacency, len(geometry.collision.faces)
    )
    sizes = np.bincount(labels)
    assert sizes.min() >= CONFIG.min_component_fraction * sizes.max()
    # the floor 70 cm below the table is outside the arena region: not in the mesh
    assert geometry.collision.bounds[0, 2] > -0.05


def test_visual_colours_come_from_the_field(geometry):
    visual = geometry.visual
    colours = visual.visual.vertex_colors[:, :3].astype(float) / 255
    on_box = (np.abs(visual.vertices[:, :2]) < [0.03, 0.02]).all(1) & (visual.vertices[:, 2] > 0.09)
    on_table = np.linalg.norm(visual.vertices[:, :2], axis=1) > 0.15
    assert on_box.sum() > 3 and on_table.sum() > 100
    assert np.allclose(np.median(colours[on_box], 0), BIRD[2], atol=0.12)
    assert np.median(colours[on_table], 0)[2] < 0.85 and np.median(colours[on_table], 0)[0] > 0.65


def test_map_blocks_the_box_and_the_world_beyond_the_table_edge(geometry):
    drivable = geometry.drivable
    box = np.array([[x, y] for x in (-0.035, 0.0, 0.035) for y in (-0.025, 0.0, 0.025)])
    assert not drivable.is_drivable(box).any()
    around = np.array([[0.1, 0], [-0.1, 0], [0, 0.1], [0, -0.1], [0.15, 0.15]])
    assert drivable.is_drivable(around).all()
    beyond = np.array([[0, 0.43], [0, -0.45], [0.55, 0], [-0.6, 0.1]])
    assert not drivable.is_drivable(beyond).any()
    path = drivable.shortest_path([0.12, 0.0], [-0.12, 0.0], clearance=0.01)
    assert len(path) > 2  # had to go around the box


def test_geometry_save_load_round_trip(geometry, tmp_path):
    geometry.save(tmp_path / "geo")
    again = Geometry.load(tmp_path / "geo")
    assert np.allclose(again.collision.vertices, geometry.collision.vertices, atol=1e-5)
    assert np.array_equal(again.visual.visual.vertex_colors, geometry.visual.visual.vertex_colors)
    assert np.array_equal(again.drivable.grid, geometry.drivable.grid)
    assert again.region.radius == pytest.approx(geometry.region.radius)


def test_fill_small_holes_closes_a_small_hole_only():
    plane = trimesh.creation.box(extents=(1, 1, 1)).subdivide().subdivide()
    holed = plane.copy()
    holed.update_faces(np.arange(len(holed.faces)) != 5)
    assert not holed.is_watertight
    assert fill_small_holes(holed, max_edges=8).is_watertight
    assert not fill_small_holes(holed, max_edges=2).is_watertight


def test_a_field_that_renders_nothing_is_a_clear_error():
    poses, intrinsics = orbit_cameras(count=4)
    with pytest.raises(MeshError, match="no trusted depth"):
        extract_geometry(
            BoxesField(boxes=()), poses, intrinsics, (64, 48), replace(CONFIG, virtual_views=1)
        )


def test_points_geometry_stands_obstacles_on_a_ground_plate(tmp_path):
    """The no-field path: sparse points on the table and box, colours from 'captured' images."""
    import cv2

    from scene_builder.mesh import points_geometry

    rng = np.random.default_rng(0)
    poses, intrinsics = orbit_cameras(count=12)
    field = BoxesField()
    paths = []
    for index, pose in enumerate(poses):
        rgb = field.render(pose[None], intrinsics[index], 64, 48).rgb[0].numpy()
        paths.append(tmp_path / f"{index:03d}.png")
        cv2.imwrite(str(paths[-1]), (rgb[..., ::-1] * 255).astype(np.uint8))
    table = np.column_stack([rng.uniform(-0.2, 0.2, (400, 2)), rng.normal(0, 0.001, 400)])
    low, high = np.array(BIRD[0]), np.array(BIRD[1])
    box = rng.uniform(low, high, (800, 3))
    face = rng.integers(0, 5, 800)  # push each point onto one of the box's five visible faces
    box[face == 0, 0], box[face == 1, 0] = low[0], high[0]
    box[face == 2, 1], box[face == 3, 1] = low[1], high[1]
    box[face == 4, 2] = high[2]
    geometry = points_geometry(
        np.concatenate([table, box]), poses, intrinsics, paths, (64, 48), CONFIG
    )
    assert geometry.stats["obstacles"] == 1
    drivable = geometry.drivable
    assert not drivable.is_drivable(np.array([[0, 0], [0.03, 0.02], [-0.03, -0.02]])).any()
    assert drivable.is_drivable(np.array([[0.12, 0], [-0.12, 0.05], [0, -0.15]])).all()
    assert not drivable.is_drivable(np.array([[0.3, 0], [0, -0.3]])).any()  # beyond the orbit
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    origins = np.stack([0.2 * np.cos(angles), 0.2 * np.sin(angles), np.full(8, 0.03)], 1)
    distance = cast(geometry.collision, np.concatenate([origins, -origins * [1, 1, 0] / 0.2], 1))
    # alpha shapes of sparse points can have holes: most, not all, horizontal rays hit
    hit = np.isfinite(distance)
    assert hit.sum() >= 6
    expected = 0.2 - np.abs(np.stack([np.cos(angles), np.sin(angles)], 1) * [0.04, 0.03]).max(1)
    assert np.abs(distance[hit] - expected[hit]).max() < 0.02
    colours = geometry.visual.visual.vertex_colors[:, :3].astype(float) / 255
    on_top = geometry.visual.vertices[:, 2] > 0.09
    assert np.median(colours[on_top], 0)[2] > np.median(colours[on_top], 0)[0] + 0.2  # the blue box


HAZE = ((0.1, -0.1, 0.0), (0.14, -0.06, 0.04), (0.9, 0.9, 0.9))


class BackdropTableField(BoxesField):
    """The bird field's failure modes: the white table renders as a far backdrop (the floor
    below it), and a haze blob over the table renders like a surface but spreads its weight
    along the ray, so a thin band around its depth is nearly transparent."""

    def __init__(self):
        super().__init__(boxes=(BIRD, FLOOR, HAZE))

    def _render_rays(self, origins, directions, codes, surface_t):
        rgb, depth, accumulation = super()._render_rays(origins, directions, codes, None)
        if surface_t is not None:
            points = (origins + directions * surface_t[:, None]).numpy()
            low, high = np.array(HAZE[0]) - 1e-3, np.array(HAZE[1]) + 1e-3
            haze = ((points >= low) & (points <= high)).all(axis=1)
            accumulation = torch.where(torch.from_numpy(haze), 0.2, accumulation)
        return rgb, depth, accumulation


def horizontal_hits(mesh: trimesh.Trimesh, target_xy, height: float) -> np.ndarray:
    """Where 8 horizontal rays from 0.22 m around ``target_xy`` toward it first hit ``mesh``
    (x, y), NaN for a miss."""
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    outward = np.stack([np.cos(angles), np.sin(angles), np.zeros(8)], 1)
    origins = np.array([*target_xy, height]) + 0.22 * outward
    distance = cast(mesh, np.concatenate([origins, -outward], 1))
    distance[~np.isfinite(distance)] = np.nan
    return (origins - distance[:, None] * outward)[:, :2]


def in_box(xy: np.ndarray, box, margin: float) -> np.ndarray:
    low, high = np.array(box[0][:2]) - margin, np.array(box[1][:2]) + margin
    with np.errstate(invalid="ignore"):
        return ((xy >= low) & (xy <= high)).all(axis=1)


@pytest.fixture(scope="module")
def backdrop_geometry():
    poses, intrinsics = orbit_cameras(count=16)
    config = replace(CONFIG, virtual_views=8)
    field = BackdropTableField()
    trusting = replace(config, min_surface_opacity=0.0)
    return (
        extract_geometry(field, poses, intrinsics, (64, 48), config),
        extract_geometry(field, poses, intrinsics, (64, 48), trusting),
    )


def test_ground_prior_makes_a_backdrop_table_flat_ground_inside_the_cameras_circle(
    backdrop_geometry,
):
    geometry, _ = backdrop_geometry
    xy = np.array([[x, y] for x in (-0.15, 0.0, 0.15) for y in (-0.15, 0.15)])
    rays = np.concatenate([xy, np.full((len(xy), 1), 0.5), np.tile([0, 0, -1.0], (len(xy), 1))], 1)
    assert np.abs(0.5 - cast(geometry.collision, rays)).max() < 1e-3  # the plane z = 0
    box_hits = horizontal_hits(geometry.collision, (0.0, 0.0), 0.03)
    assert in_box(box_hits, BIRD, geometry.stats["voxel_size"]).all()
    drivable = geometry.drivable
    assert drivable.is_drivable(np.array([[0.1, 0.05], [-0.12, 0.0], [0.0, -0.15]])).all()
    # beyond the cameras' circle (radius 0.25) nothing says the table goes on: a cliff
    assert not drivable.is_drivable(np.array([[0.32, 0.0], [0.0, -0.3], [-0.35, 0.1]])).any()


def test_haze_with_a_transparent_surface_band_is_left_out(backdrop_geometry):
    geometry, trusting = backdrop_geometry
    haze_centre = np.mean(HAZE[:2], axis=0)[:2]
    # trusted as a surface, the haze would be an obstacle...
    margin = geometry.stats["voxel_size"]
    assert not trusting.drivable.is_drivable(haze_centre[None]).any()
    assert in_box(horizontal_hits(trusting.collision, haze_centre, 0.02), HAZE, margin).sum() >= 6
    # ...the band-opacity test leaves it out: ground to drive on, nothing in the way
    assert geometry.drivable.is_drivable(haze_centre[None]).all()
    assert not in_box(horizontal_hits(geometry.collision, haze_centre, 0.02), HAZE, margin).any()


def test_convex_parts_of_an_l_shape_are_convex_and_keep_its_volume():
    pytest.importorskip("coacd", reason="optional extra absent: install driveenv[coacd]")
    from scene_builder.mesh import convex_parts

    occupied = np.zeros((12, 12, 5), bool)
    occupied[1:11, 1:3, 1:4] = occupied[1:3, 1:11, 1:4] = True
    shape = trimesh.voxel.VoxelGrid(occupied).marching_cubes
    shape.apply_scale(0.01)
    parts = convex_parts(shape, seed=0)
    assert len(parts) >= 2 and all(part.is_convex for part in parts)
    volume = sum(part.volume for part in parts)
    assert volume == pytest.approx(shape.volume, rel=0.05)
    assert volume < 0.6 * shape.convex_hull.volume  # one hull would fill the L's corner
    with pytest.raises(MeshError, match="watertight"):
        convex_parts(trimesh.Trimesh(shape.vertices, shape.faces[:-4]))


def test_cameras_along_a_line_give_no_ground_area():
    from scene_builder.mesh import ground_area

    poses = np.tile(np.eye(4), (10, 1, 1))
    poses[:, 0, 3] = np.linspace(0, 5, 10)  # a walk down a street
    assert ground_area(poses) is None
    orbit, _ = orbit_cameras(count=8)
    inside = ground_area(orbit).find_simplex([[0.0, 0.0], [0.4, 0.0]])  # orbit radius 0.25
    assert inside[0] >= 0 and inside[1] < 0

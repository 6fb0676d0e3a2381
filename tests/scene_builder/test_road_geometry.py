"""Road geometry on an analytic street: the ground prior along the path, obstacles beside it,
the drivable map grown from the driven corridor (``scene_builder.geometry.road_fusion``,
``scene_builder.road``)."""

from __future__ import annotations

import numpy as np
import pytest
from fake_fields import BoxesField

from scene_builder.camera import look_at
from scene_builder.errors import MeshError
from scene_builder.geometry.ground import ROAD, GroundProfile, RoadPrior, capture_kind
from scene_builder.mesh import MeshConfig, extract_geometry
from scene_builder.road import road_tasks

# A straight street along +x: the road at z = 0, house fronts 6 m each side, a parked car.
ROAD_SURFACE = ((-20, -12, -0.2), (80, 12, 0.0), (0.45, 0.45, 0.47))
HOUSES = (((-20, 6, 0.0), (80, 10, 8.0), (0.7, 0.5, 0.4)),
          ((-20, -10, 0.0), (80, -6, 8.0), (0.6, 0.6, 0.5)))  # fmt: skip
PARKED_CAR = ((25, -3.5, 0.0), (29.5, -1.7, 1.5), (0.8, 0.1, 0.1))


@pytest.fixture(scope="module")
def street():
    xs = np.linspace(0, 60, 16)
    poses = np.array([look_at(np.array([x, 0.0, 1.6]), np.array([x + 10, 0.0, 1.2])) for x in xs])
    intrinsics = np.tile([40.0, 40.0, 32.0, 24.0], (len(poses), 1))
    heights = np.full(len(poses), 1.6)
    prior = RoadPrior(GroundProfile.from_poses(poses, heights), heights, metric=True)
    config = MeshConfig(
        resolution=96, target_faces=4000, render_scale=1.0, virtual_views=4,
        virtual_size=32, road_margin=8.0,
    )  # fmt: skip
    field = BoxesField((ROAD_SURFACE, *HOUSES, PARKED_CAR))
    geometry = extract_geometry(field, poses, intrinsics, (64, 48), config, road=prior)
    return poses, prior, geometry


def test_a_forward_camera_is_a_road(street):
    poses, _, _ = street
    assert capture_kind(poses) == ROAD


def test_road_map_covers_the_route_and_stops_at_obstacles(street):
    _, prior, geometry = street
    stats, drivable = geometry.stats, geometry.drivable
    assert stats["scene_kind"] == "road" and stats["route_covered"] == 1.0
    assert drivable.is_drivable(np.array([[10.0, 0.0], [10.0, 2.5], [10.0, -2.5]])).all()
    # the houses and the parked car block their footprints; beyond the road width is not road
    assert not drivable.is_drivable(np.array([[10.0, 7.5], [10.0, -7.5], [27.0, -2.6]])).any()
    # the car fits everywhere along the route: at least its width, beside the parked car too
    assert stats["width_min"] >= prior.vehicle_size()["vehicle_width"]
    assert stats["width_median"] > 6.0
    # the map is the street, not the whole region
    assert stats["drivable_share"] < 0.3


def test_collision_has_the_road_under_the_path_and_the_houses_beside_it(street):
    _, _, geometry = street
    from scene_builder.raycast import MeshCaster

    caster = MeshCaster.from_trimesh(geometry.collision)
    points = np.array([[5.0, 0.0], [30.0, 0.5], [55.0, -1.0]])
    rays = np.zeros((len(points), 6), np.float32)
    rays[:, :2], rays[:, 2], rays[:, 5] = points, 20.0, -1.0
    top = 20.0 - caster.cast(rays).t_hit
    assert np.all(np.abs(top) < 0.15)  # the road sheet on the ground profile
    # looking sideways from the road at 1 m: the house fronts, 6 m away, fused from the field
    # (most of them: a TSDF leaves holes where few views agree), and nothing nearer
    xs = np.arange(32.5, 56.0, 2.5)  # past the parked car
    sideways = np.array([[x, 0.0, 1.0, 0.0, side, 0.0] for x in xs for side in (-1, 1)])
    distance = caster.cast(sideways.astype(np.float32)).t_hit
    assert np.mean(np.abs(distance - 6.0) < 1.0) >= 0.8, distance
    assert np.all(distance > 5.0)


def test_tasks_are_sections_of_the_route_and_a_short_path_is_refused(street):
    _, prior, geometry = street
    spawns, goals, routes = road_tasks(geometry.drivable, prior, 5, seed=3)
    assert len(spawns) == 5
    for spawn, goal, route in zip(spawns, goals, routes, strict=True):
        assert abs(spawn.y) < 1e-6 and abs(spawn.yaw) < 1e-6  # on the route, along it
        assert goal.x - spawn.x == pytest.approx(30.0, abs=0.01)  # half the 60 m route
        assert geometry.drivable.is_drivable(route).all()
    short = RoadPrior(GroundProfile([[0, 0], [8, 0]], [0, 0]), [1.6, 1.6], metric=True)
    with pytest.raises(MeshError, match="no route to drive"):
        road_tasks(geometry.drivable, short, 2)

"""One PyBullet world holding the scene and several vehicle bodies.

``simulator.world.World`` loads the scene mesh and the first vehicle; the others are the same
collision box (``simulator.world.vehicle_body``, the one place that sizes a vehicle's body) in
the same client, all in the vehicle collision group; unlike the single vehicle's, their bodies
accept every ray, so each robot's range scan sees the others. Contacts are Bullet's closest points within zero distance,
as in ``World``: each body against the scene mesh, and each pair of bodies against each other.
A body that has left the episode (its robot arrived) is parked far below the ground, where it
touches nothing and no scan ray reaches it.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pybullet

from simulator.vehicles import VehicleSpec
from simulator.world import VEHICLE_GROUP, World, vehicle_body

RAYS_SEE_ALL = -1  # collision mask of a robot body: hit by rays of any group
PARK_DEPTH = -1.0e3  # metres below the ground where an absent robot's body waits


class MultiWorld:
    """The scene mesh and ``count`` vehicle bodies in one DIRECT client."""

    def __init__(self, collision_mesh, spec: VehicleSpec, count: int) -> None:
        self.spec = spec
        self.world = World(collision_mesh, spec)
        client = self.world.client
        self.bodies = [self.world.vehicle_body]
        self.base_z = [0.0] * count  # the ground height under each robot (terrain on roads)
        try:
            self.bodies += [vehicle_body(spec, client) for _ in range(count - 1)]
            for body in self.bodies:  # every robot's body is seen by the others' scans
                pybullet.setCollisionFilterGroupMask(
                    body, -1, VEHICLE_GROUP, RAYS_SEE_ALL, physicsClientId=client
                )
        except BaseException:
            self.close()
            raise

    def place(self, index: int, x: float, y: float, yaw: float, z: float = 0.0) -> None:
        """Put robot ``index`` at ground pose (x, y, yaw), on ground at height ``z``."""
        half = 0.5 * yaw
        self.base_z[index] = z
        pybullet.resetBasePositionAndOrientation(
            self.bodies[index],
            (x, y, z),
            (0.0, 0.0, math.sin(half), math.cos(half)),
            physicsClientId=self.world.client,
        )

    def park(self, index: int) -> None:
        """Move robot ``index``'s body out of the scene (far below the ground, spread apart)."""
        pybullet.resetBasePositionAndOrientation(
            self.bodies[index],
            (10.0 * index, 0.0, PARK_DEPTH),
            (0.0, 0.0, 0.0, 1.0),
            physicsClientId=self.world.client,
        )

    def _touching(self, a: int, b: int) -> bool:
        return bool(pybullet.getClosestPoints(a, b, 0.0, physicsClientId=self.world.client))

    def scene_contacts(self, indices) -> set[int]:
        """The robots among ``indices`` whose bodies touch the scene mesh."""
        scene = self.world.scene_body
        return {i for i in indices if self._touching(self.bodies[i], scene)}

    def robot_contacts(self, indices) -> set[tuple[int, int]]:
        """The pairs (i, j), i < j, among ``indices`` whose bodies touch each other."""
        return {
            (i, j)
            for i, j in combinations(sorted(indices), 2)
            if self._touching(self.bodies[i], self.bodies[j])
        }

    def range_scan(
        self, index: int, x: float, y: float, yaw: float, count: int, max_range: float
    ) -> np.ndarray:
        """Distances (count,) to the scene or another robot along a horizontal fan of rays.

        The same fan as ``World.range_scan`` (360 degrees from straight ahead, mid-body
        height); hits on the robot's own body are ignored.
        """
        spec = self.spec
        z = self.base_z[index] + spec.ground_clearance + 0.5 * (spec.height - spec.ground_clearance)
        angles = yaw + np.arange(count) * (2.0 * math.pi / count)
        starts = np.stack([np.full(count, x), np.full(count, y), np.full(count, z)], axis=1)
        ends = starts + max_range * np.stack(
            [np.cos(angles), np.sin(angles), np.zeros(count)], axis=1
        )
        hits = pybullet.rayTestBatch(
            starts.tolist(), ends.tolist(), physicsClientId=self.world.client
        )
        own = self.bodies[index]
        fractions = np.array([h[2] if h[0] not in (-1, own) else 1.0 for h in hits])
        return (fractions * max_range).astype(np.float32)

    def close(self) -> None:
        self.world.close()

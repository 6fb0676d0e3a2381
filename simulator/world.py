"""The physics world: one PyBullet client in DIRECT mode per environment.

The scene's collision mesh is a static concave triangle mesh (``GEOM_FORCE_CONCAVE_TRIMESH``,
Bullet's BVH triangle mesh, the only exact shape for a reconstructed scene); the vehicle is its
collision box, built from its ``VehicleSpec`` (length x width, from ``ground_clearance`` up to
``height``: the chassis of the URDFs in ``assets/vehicles`` for a table-top vehicle, and a road
car's own 4.5 x 1.8 x 1.5 m, which no uniform scaling of a URDF gives). Vehicles are kinematic (``simulator.vehicles``), so the world
never integrates dynamics: each sub-step places the vehicle body at its new pose and asks Bullet
for the closest points between the body and the scene within zero distance, i.e. the contacts.
``getClosestPoints`` is used rather than a contact query, which Bullet's broadphase would filter
out between two static bodies.
The vehicle's collision body starts a little above the ground, so flat ground is not a contact;
an obstacle, a wall or the bird is. PyBullet also casts the optional range scan.

Ground height. A table top is the plane z = 0. A road can slope, so on a road scene the
environment follows the terrain: ``ground_height`` casts a vertical ray that ignores the vehicle
(its body is in its own collision group) and the vehicle is placed at the height found. The ray
starts ``ground_clearance`` above the last height, so the car rolls onto what its clearance
allows (a slope, a low kerb) and anything taller meets its collision box as an obstacle.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import pybullet

from simulator.errors import SimulatorError
from simulator.vehicles import VehicleSpec

# The open PyBullet clients of this process, so tests can prove that none leaks.
OPEN_CLIENTS: set[int] = set()
VEHICLE_GROUP = 4  # collision group of the vehicle body; static scene bodies are Bullet's group 2
SCENE_RAYS = 3  # ray mask: Bullet's default and static groups, not the vehicle
GROUND_SEARCH = 1000.0  # metres: the first ground search spans the whole scene
GROUND_DROP = 2.0  # metres below the last ground height a later search reaches


def vehicle_body(spec: VehicleSpec, client: int) -> int:
    """A static collision box for ``spec`` in ``client``, origin on the ground under its centre."""
    tall = spec.height - spec.ground_clearance
    shape = pybullet.createCollisionShape(
        pybullet.GEOM_BOX,
        halfExtents=(0.5 * spec.length, 0.5 * spec.width, 0.5 * tall),
        collisionFramePosition=(0.0, 0.0, spec.ground_clearance + 0.5 * tall),
        physicsClientId=client,
    )
    return pybullet.createMultiBody(
        baseMass=0, baseCollisionShapeIndex=shape, physicsClientId=client
    )


class World:
    """A PyBullet DIRECT client holding the scene's collision mesh and one vehicle body."""

    def __init__(self, collision_mesh: str | Path, spec: VehicleSpec) -> None:
        self.spec = spec
        self.client = pybullet.connect(pybullet.DIRECT)
        if self.client < 0:
            raise SimulatorError("PyBullet could not start a DIRECT physics client")
        OPEN_CLIENTS.add(self.client)
        try:
            shape = pybullet.createCollisionShape(
                pybullet.GEOM_MESH,
                fileName=str(collision_mesh),
                flags=pybullet.GEOM_FORCE_CONCAVE_TRIMESH,
                physicsClientId=self.client,
            )
            if shape < 0:
                raise SimulatorError(f"{collision_mesh}: PyBullet cannot load this collision mesh")
            self.scene_body = pybullet.createMultiBody(
                baseMass=0, baseCollisionShapeIndex=shape, physicsClientId=self.client
            )
            self.vehicle_body = vehicle_body(spec, self.client)
            pybullet.setCollisionFilterGroupMask(
                self.vehicle_body, -1, VEHICLE_GROUP, 0, physicsClientId=self.client
            )
            self.base_z = 0.0  # ground height under the vehicle
        except BaseException:
            self.close()
            raise

    def place_vehicle(self, x: float, y: float, yaw: float, z: float = 0.0) -> None:
        """Put the vehicle body at ground pose (x, y, yaw), on ground at height ``z``."""
        half = 0.5 * yaw
        self.base_z = z
        pybullet.resetBasePositionAndOrientation(
            self.vehicle_body,
            (x, y, z),
            (0.0, 0.0, math.sin(half), math.cos(half)),
            physicsClientId=self.client,
        )

    def in_collision(self) -> bool:
        """Whether the vehicle body touches or penetrates the scene mesh at its current pose."""
        contacts = pybullet.getClosestPoints(
            self.vehicle_body, self.scene_body, 0.0, physicsClientId=self.client
        )
        return len(contacts) > 0

    def ground_height(self, x: float, y: float, last: float | None = None) -> float | None:
        """The scene's surface height at (x, y), or None where there is none.

        With ``last`` (the height a moment ago) the ray runs from ``ground_clearance`` above it
        down to ``GROUND_DROP`` below; without, it runs up from far below and the lowest
        surface is the ground (on a road scene, what stands on it is above it).
        """
        if last is None:
            start, end = (x, y, -GROUND_SEARCH), (x, y, GROUND_SEARCH)
        else:
            start = (x, y, last + self.spec.ground_clearance)
            end = (x, y, last - GROUND_DROP)
        hit = pybullet.rayTest(
            start, end, collisionFilterMask=SCENE_RAYS, physicsClientId=self.client
        )[0]
        return float(hit[3][2]) if hit[0] == self.scene_body else None

    def ground_below(self, x: float, y: float, depth: float) -> bool:
        """Whether a downward ray from above (x, y) hits the scene within ``depth`` below z = 0."""
        top = self.spec.height + self.spec.ground_clearance
        hit = pybullet.rayTest((x, y, top), (x, y, -depth), physicsClientId=self.client)[0]
        return hit[0] == self.scene_body

    def range_scan(
        self, x: float, y: float, yaw: float, count: int, max_range: float
    ) -> np.ndarray:
        """Distances (count,) to the scene along a horizontal fan of rays, ``max_range`` if none.

        The rays leave the vehicle's body centre at mid-body height, evenly spread over 360
        degrees starting straight ahead.
        """
        z = self.base_z + 0.5 * (self.spec.height + self.spec.ground_clearance)
        angles = yaw + np.arange(count) * (2.0 * math.pi / count)
        starts = np.stack([np.full(count, x), np.full(count, y), np.full(count, z)], axis=1)
        ends = starts + max_range * np.stack(
            [np.cos(angles), np.sin(angles), np.zeros(count)], axis=1
        )
        hits = pybullet.rayTestBatch(starts.tolist(), ends.tolist(), physicsClientId=self.client)
        fractions = np.array([h[2] if h[0] == self.scene_body else 1.0 for h in hits])
        return (fractions * max_range).astype(np.float32)

    def close(self) -> None:
        """Disconnect the client (idempotent)."""
        if self.client in OPEN_CLIENTS:
            OPEN_CLIENTS.discard(self.client)
            pybullet.disconnect(physicsClientId=self.client)

    def __del__(self) -> None:  # a forgotten close() must not leak a client
        with contextlib.suppress(Exception):  # interpreter shutdown may have torn pybullet down
            self.close()

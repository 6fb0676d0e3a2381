"""The route geometry behind spawns and lane metrics, on an L-shaped route (hand-computed)."""

import numpy as np
import pytest

from common.polyline import Polyline

L_ROUTE = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 0.0], [10.0, 5.0]])  # a repeated corner


def test_projection_arc_and_distance():
    line = Polyline(L_ROUTE)
    assert line.length == pytest.approx(15.0)
    beside = line.project(np.array([4.0, -1.5]))
    assert (beside.arc, beside.distance) == pytest.approx((4.0, 1.5))
    up_the_leg = line.project(np.array([12.0, 3.0]))
    assert (up_the_leg.arc, up_the_leg.distance) == pytest.approx((13.0, 2.0))
    behind = line.project(np.array([-3.0, 4.0]))  # before the start: distance to the start
    assert (behind.arc, behind.distance) == pytest.approx((0.0, 5.0))


def test_point_tangent_and_section():
    line = Polyline(L_ROUTE)
    point, tangent = line.at(12.5)
    assert point == pytest.approx([10.0, 2.5]) and tangent == pytest.approx([0.0, 1.0])
    assert line.at(99.0)[0] == pytest.approx([10.0, 5.0])  # clamped to the end
    section = line.section(8.0, 11.0)
    assert section == pytest.approx(np.array([[8.0, 0.0], [10.0, 0.0], [10.0, 1.0]]))
    assert Polyline(section).length == pytest.approx(3.0)


def test_points_at_several_arcs_at_once_clamped_to_the_ends():
    line = Polyline(L_ROUTE)
    points, tangents = line.points_at(np.array([-2.0, 4.0, 10.0, 12.5, 99.0]))
    assert points == pytest.approx(np.array([[0, 0], [4, 0], [10, 0], [10, 2.5], [10, 5]]))
    assert tangents == pytest.approx(np.array([[1, 0], [1, 0], [0, 1], [0, 1], [0, 1]]))

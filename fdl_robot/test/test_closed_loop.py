"""The whole loop from pixels through the ROS graph, with the shipped detector and ACT weights.

One episode of ``fdl-robot-closed-loop`` (what ``scripts/demo.sh`` runs): sim_node's camera
through detector, localizer and tracker to the ACT policy_node and back to sim_node.
"""
from __future__ import annotations

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("torch")

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_one_pick_and_place_from_pixels_through_the_ros_graph(tmp_path):
    from fdl_robot.eval.closed_loop import run_closed_loop

    results, videos, rtf = run_closed_loop(episodes=1, seed0=5000, overrides={}, max_sim_s=20.0,
                                           record_episodes=1, progress=print)
    (r,) = results
    assert r.success, r
    assert 3.0 < r.duration_s < 20.0
    assert r.commands > 100 and r.detections > 30          # the loop ran on perception, not blind
    assert len(videos) == 1 and len(videos[0]) > 30
    assert videos[0][0].ndim == 3 and rtf > 0.05

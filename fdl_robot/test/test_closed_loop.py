"""The whole loop from pixels through the ROS graph, with the shipped detector and ACT weights.

One episode of ``fdl-robot-closed-loop`` (what ``scripts/demo.sh`` runs): sim_node's camera
through detector, localizer and tracker to the ACT policy_node and back to sim_node, a
process per node, at real time on the wall clock.
"""
from __future__ import annotations

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("torch")

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.mark.parametrize("camera", ["scene", "both"])
def test_one_pick_and_place_from_pixels_through_a_process_per_node(tmp_path, camera):
    from fdl_robot.eval.closed_loop import DETECTOR_DEFAULTS, GraphOptions, run_closed_loop

    # what fdl-robot-closed-loop (scripts/demo.sh) runs: its detector, SCHED_FIFO where permitted;
    # with camera 'both' the wrist camera's chain too (namespace wrist_camera, its own detector)
    run = run_closed_loop(episodes=1, seed0=5000, overrides={"detector_node": dict(DETECTOR_DEFAULTS)}, max_sim_s=20.0,
                          record_episodes=1, options=GraphOptions.with_realtime("auto", log_dir=tmp_path,
                                                                                camera=camera),
                          progress=print)
    (r,) = run.results
    assert r.success, (r, run.timing)
    assert 3.0 < r.duration_s < 20.0
    assert r.commands > 100 and r.detections > 30          # the loop ran on perception, not blind
    assert len(run.videos) == 1 and len(run.videos[0]) > 30
    assert run.videos[0][0].ndim == 3
    t = run.timing                                          # measured as the arm receives commands
    assert t["command_interval_ms"]["n"] > 100 and t["latency_ms"]["n"] > 30
    assert 0.5 < t["real_time_factor"] < 1.1
    assert {"sim_node", "detector_node", "localizer_node", "tracker_node", "policy_node"} <= set(run.cpu_percent)
    for name in ("sim_node", "detector_node", "localizer_node", "tracker_node", "policy_node"):
        assert (tmp_path / f"{name}.log").is_file()
    if camera == "both":                                    # the wrist chain ran on the wrist camera's frames
        for name in ("wrist_camera/detector_node", "wrist_camera/localizer_node"):
            assert run.cpu_percent[name] > 2.0, run.cpu_percent
            log = (tmp_path / f"{name.replace('/', '.')}.log").read_text()
            assert "Traceback" not in log
        wrist_log = (tmp_path / "wrist_camera.detector_node.log").read_text()
        assert "models/detector_wrist/best.onnx: /wrist_camera/camera/color/image_raw ->" in wrist_log

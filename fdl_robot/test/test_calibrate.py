"""fdl-robot-calibrate end to end in the simulator (few poses), its YAML, the bag path, the live capture."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml
from ros_harness import RosHarness
from sensor_msgs.msg import JointState

from fdl_robot import calibrate
from fdl_robot.core.geometry import Transform
from fdl_robot.core.joint_buffer import JointBuffer
from fdl_robot.perception import handeye as he
from fdl_robot.perception.charuco import DEFAULT_BOARD, board_pose, detect_board
from fdl_robot.ros.calibration_capture import LiveCapture
from fdl_robot.ros.conversions import camera_to_camera_info, ns_to_stamp, rgb_to_image
from fdl_robot.ros.parameters import NODE_PARAMETERS
from fdl_robot.sim import calibration as simcal

pytestmark = pytest.mark.ros


def test_the_board_pose_seen_in_the_simulator_is_the_true_one():
    """Texture mapping and PnP: T_cam_board from the wrist camera's image equals the model's truth."""
    env = simcal.make_env(he.EYE_IN_HAND, seed=3)
    try:
        rng = np.random.default_rng(3)
        poses = simcal.plan_poses(env, he.EYE_IN_HAND, 2, rng)
        cap = simcal.capture(env, he.EYE_IN_HAND, poses, rng, pixel_noise=0.0, progress=False)
        T_base_board = simcal._geom_pose(env, simcal.BOARD_GEOM) @ simcal.T_geom_board()
        T_flange_cam = simcal.true_extrinsics(env, he.EYE_IN_HAND)
        for f in cap.frames:
            obs, why = detect_board(f.rgb)
            assert obs is not None, why
            T_cam_board, rms = board_pose(obs, cap.camera)
            truth = (simcal.flange_pose(f.q_rad) @ T_flange_cam).inverse() @ T_base_board
            e_t, e_r = he.transform_error(T_cam_board, truth)
            assert rms < 0.3 and e_t < 1.5 and e_r < 0.3, (rms, e_t, e_r)
    finally:
        env.close()


def run_sim(tmp_path, mode, *extra):
    out = tmp_path / mode
    assert calibrate.main(["--sim", "--mode", mode, "--poses", "7", "--seed", "5", "--output", str(out), "--quiet",
                           *extra]) == 0
    return out, json.loads((out / "report.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("mode", he.MODES)
def test_sim_calibration_end_to_end(tmp_path, capsys, mode):
    bag = tmp_path / "capture_bag"
    out, rep = run_sim(tmp_path, mode, "--record-bag", str(bag))
    printed = capsys.readouterr().out
    # the error line closes the output and holds the report's figures, within the target
    last = re.fullmatch(r"calibration error: (\S+) mm, (\S+) deg", printed.strip().splitlines()[-1])
    e = rep["calibration_error"]
    assert last and abs(float(last[1]) - e["mm"]) <= 0.006 and abs(float(last[2]) - e["deg"]) <= 0.0006
    assert e["mm"] <= 2.0 and e["deg"] <= 0.2
    assert "| TSAI |" in printed and "(selected)" in printed and rep["poses"]["n_poses"] == 7
    # the YAML holds parameters the localizer (and the state publisher) declare, with the answer
    params = yaml.safe_load((out / "extrinsics.yaml").read_text())
    for node in ("localizer_node", "state_publisher_node"):
        declared = {p.name for p in NODE_PARAMETERS[node]}
        assert set(params[node]["ros__parameters"]) <= declared
    loc = params["localizer_node"]["ros__parameters"]
    prefix = "camera" if mode == he.EYE_TO_HAND else "camera_mount"
    X = Transform.from_quaternion(loc[f"{prefix}_quat_xyzw"], loc[f"{prefix}_xyz"])
    assert he.transform_error(calibrate.read_extrinsics(out / "extrinsics.yaml"), X) < (1e-9, 1e-6)
    truth = Transform.from_quaternion(rep["truth"]["quat_xyzw"], rep["truth"]["xyz"])
    assert he.transform_error(X, truth) < (2.0, 0.2)
    assert loc["transform_source"] == ("fixed" if mode == he.EYE_TO_HAND else "arm")
    tf = yaml.safe_load((out / "tf_static.yaml").read_text())
    assert tf["parent"] == ("base_link" if mode == he.EYE_TO_HAND else "tool0")
    assert tf["child"] == calibrate.CAMERA_FRAMES[mode] and tf["xyz"] == loc[f"{prefix}_xyz"]

    # the same capture read back from its bag: images at rest, joint states interpolated at their stamps
    assert calibrate.main(["--bag", str(bag), "--mode", mode, "--output", str(tmp_path / "from_bag"), "--quiet"]) == 0
    from_bag = json.loads((tmp_path / "from_bag" / "report.json").read_text())
    assert len(from_bag["per_pose"]) == 7 and "truth" not in from_bag
    assert np.allclose(from_bag["X"]["xyz"], rep["X"]["xyz"], atol=1e-5)
    assert np.allclose(from_bag["X"]["quat_xyzw"], rep["X"]["quat_xyzw"], atol=1e-5)


def test_a_bag_without_the_topics_is_refused(tmp_path, capsys):
    frames = [calibrate.Frame(2_000_000_000, np.zeros((48, 64, 3), np.uint8), np.zeros(6))]
    cam = simcal.make_env(he.EYE_TO_HAND).camera_intrinsics("scene_cam", 64, 48)
    calibrate.write_bag(tmp_path / "b", frames, cam, ["shoulder_pan_joint"], np.array([1_000_000_000]),
                        np.zeros((1, 1)), he.EYE_TO_HAND)
    with pytest.raises(ValueError, match="no messages on /wrist_camera/camera/color/image_raw"):
        calibrate.read_bag(tmp_path / "b", he.EYE_IN_HAND, ["shoulder_pan_joint"], progress=False)


def test_images_without_a_board_are_reported():
    frames = [calibrate.Frame(k, np.full((480, 640, 3), 128, np.uint8), np.zeros(6), f"image {k}") for k in range(4)]
    cam = simcal.make_env(he.EYE_TO_HAND).camera
    with pytest.raises(he.DegeneratePoses, match=r"board not detected: usable in 0 of 4 images, need 3 .*"
                       r"image 0: 0 ChArUco corners \(0 markers\) found, need 6"):
        calibrate.solve(frames, cam, he.EYE_TO_HAND, DEFAULT_BOARD, simcal.flange_pose)


def test_only_images_after_a_rest_are_used_one_per_rest():
    names = ["a", "b"]
    buf = JointBuffer(names, history_s=100)
    t = np.arange(0, 6.0, 0.02)
    # rest at 0 until 1 s, move to 0.5 rad by 2 s, rest until 4 s, drift slowly after
    q = np.interp(t, [0, 1, 2, 4, 6], [0, 0, 0.5, 0.5, 0.52])
    for ti, qi in zip(t, q, strict=True):
        buf.add(names, [qi, -qi], int(ti * 1e9))
    stamps = [int(s * 1e9) for s in (0.5, 0.9, 1.5, 2.5, 3.0, 5.0, 7.0)]
    got = calibrate.still_frames(stamps, buf, still_s=0.2)
    used = [k for k, qk, _ in got if qk is not None]
    why = {k: w for k, qk, w in got if qk is None}
    assert used == [0, 3]                            # 0.9 s and 3.0 s repeat a rest already used
    assert set(why) == {2, 5, 6} and "moved" in why[2] and "moved" in why[5] and "past the newest" in why[6]


def test_the_board_is_only_in_the_calibration_model_and_changes_no_episode():
    import mujoco

    from fdl_robot.sim.env import PickPlaceEnv

    plain = PickPlaceEnv()
    try:
        assert mujoco.mj_name2id(plain.model, mujoco.mjtObj.mjOBJ_GEOM, simcal.BOARD_GEOM) == -1
        for mode in he.MODES:
            env = simcal.make_env(mode, seed=30007)
            plain.reset(seed=30007)
            try:   # same seed, same episode: the scene camera's jitter, the cubes
                assert mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_GEOM, simcal.BOARD_GEOM) >= 0
                assert he.transform_error(env.T_base_cam, plain.T_base_cam) == (0.0, 0.0)
                assert np.array_equal(env.object_pose("red_cube").position_m, plain.object_pose("red_cube").position_m)
            finally:
                env.close()
    finally:
        plain.close()


def test_live_capture_takes_an_image_per_rest_at_its_own_stamp():
    names = list(simcal.ur5e_gripper().joint_names)
    cam = simcal.make_env(he.EYE_TO_HAND).camera_intrinsics("scene_cam", 64, 48)
    with RosHarness() as ros:
        cap = LiveCapture(ros.probe, names, "image", "camera_info", "joint_states", still_s=0.2)
        cap.on_camera_info(camera_to_camera_info(cam, ns_to_stamp(0), "camera_color_optical_frame"))

        def joints(t_s, q):
            msg = JointState(name=names, position=[float(q)] * 6)
            msg.header.stamp = ns_to_stamp(int(t_s * 1e9))
            cap.on_joint_states(msg)

        def image(t_s):
            cap.on_image(rgb_to_image(np.zeros((48, 64, 3), np.uint8), ns_to_stamp(int(t_s * 1e9)), "cam"))

        for t in np.arange(0.0, 1.0, 0.02):                # rest at 0.1 rad
            joints(t, 0.1)
        image(0.5)                                         # at rest: taken
        image(0.98)                                        # the same rest: not taken
        image(1.5)                                         # newer than the joint states: waits
        assert cap.process() is not None and cap.process() is None
        for t in np.arange(1.0, 2.0, 0.02):                # a move from 0.1 to 0.3 rad by 1.5 s
            joints(t, 0.1 + 0.2 * min(1.0, (t - 1.0) / 0.5))
        assert cap.process() is None                       # 1.5 s: it was moving just before
        image(1.9)
        frame = cap.process()
        assert frame is not None and np.allclose(frame.q_rad, 0.3) and frame.stamp_ns == int(1.9e9)
        cap.requested.set()                                # Enter: the same rest again
        image(1.95)
        assert cap.process() is not None and len(cap.frames) == 3 and cap.camera_frame == "camera_color_optical_frame"

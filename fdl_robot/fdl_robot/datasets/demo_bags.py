"""What a demonstration bag holds, and the features of the datasets made from it (stated once).

A demonstration bag is one episode (``fdl-robot-record-demos``, :mod:`fdl_robot.bags.demos`):
a standard rosbag2 directory with the topics of :func:`demo_topics` as the graph published them,
plus the episode markers on :data:`EPISODE_TOPIC`.

Episode markers
---------------
``/episode`` (``std_msgs/String``, JSON) holds two messages, written into the bag by the recorder
itself (:meth:`~fdl_robot.bags.recorder.BagRecorder.write`) on the bag's clock:

* ``{"event": "start", "episode": i, "seed": s, "operator": ..., "perturbation": ..., ...}`` right
  after the simulator's reset: the episode's data are the messages received after it;
* ``{"event": "end", "success": bool, "duration_s": ..., "reason": ...}`` when the episode ends
  (``success``: ``sim/success`` true once the operator is done and the scene has settled, the rule
  of the 10/10 teleoperation result, :mod:`fdl_robot.eval.ros_expert`).

Why a topic and not the bag's metadata.yaml: metadata.yaml is written only when the bag is closed
(a killed recording has none until ``fdl-robot-bag reindex``), while a marker is flushed into the
mcap at once like every message, carries its time on the same clock as the data, and shows in
``ros2 bag info``/Foxglove as any topic. A bag with a start and no end marker was stopped during
its episode: it counts as not succeeded.

Dataset features (both formats, one row per control tick, :data:`CONTROL_FPS` = 50 Hz)
------------------------------------------------------------------------------------
* ``observation.state`` (7,): :data:`STATE_NAMES`, arm joints (rad) and the gripper closure (0 open
  .. 1 closed), from ``joint_states`` (arm and gripper merged by name);
* ``observation.environment_state`` (6,): :data:`ENVIRONMENT_STATE_NAMES`, the tracked target
  (red cube centre) and bin in ``base_link``, m, from the recorded ``/tracks`` (what perception
  saw, never ``sim/ground_truth``), chosen by the policy's own rules
  (:class:`~fdl_robot.policy.inputs.PolicyInputs`: the most-hit confirmed ``red_cube`` track, the
  ``bin`` track or the configured bin position);
* ``action`` (7,): :data:`ACTION_NAMES`, the commanded arm joints (point 0 of the arm's
  JointTrajectory, or the position command) and gripper closure.
"""
from __future__ import annotations

from fdl_robot.core.robot import ARM_JOINT_NAMES, CONTROL_DT_S

__all__ = ["CONTROL_FPS", "EPISODE_TOPIC", "STATE_NAMES", "ACTION_NAMES", "ENVIRONMENT_STATE_NAMES", "FEATURES",
           "demo_topics", "resolve"]

#: Rows per second of the datasets: the control rate.
CONTROL_FPS = round(1.0 / CONTROL_DT_S)
#: Episode markers (module docstring).
EPISODE_TOPIC = "/episode"
STATE_NAMES = (*ARM_JOINT_NAMES, "gripper")
ACTION_NAMES = STATE_NAMES
ENVIRONMENT_STATE_NAMES = ("target_x", "target_y", "target_z", "bin_x", "bin_y", "bin_z")
#: LeRobot feature name -> component names (shape = (len,), float32 in LeRobot, float64 in HDF5).
FEATURES = {"observation.state": STATE_NAMES, "observation.environment_state": ENVIRONMENT_STATE_NAMES,
            "action": ACTION_NAMES}


def resolve(topic: str) -> str:
    """A parameter's topic name (relative) as the root namespace resolves it."""
    return topic if topic.startswith("/") else "/" + topic


def demo_topics(interface=None, images: bool = True, teleop: bool = False) -> dict[str, list[str]]:
    """The topics of a demonstration bag by role (absolute names, the graph in the root namespace).

    ``interface``: the robot profile's :class:`~fdl_robot.ros.interfaces.RobotInterface` (default:
    the simulated cell's); ``images``: colour and depth images (camera_info is always recorded);
    ``teleop``: the operator's ``cmd_vel`` and ``joy`` too.
    """
    from fdl_robot.ros.interfaces import RobotInterface
    from fdl_robot.ros.parameters import defaults

    interface = interface or RobotInterface()
    sim, tracker, teleop_p = defaults("sim_node"), defaults("tracker_node"), defaults("teleop_node")
    gripper = {"trajectory": interface.gripper_trajectory_topic, "position": interface.gripper_position_topic,
               "action": None}[interface.gripper_command_interface]
    roles = {
        "joint_states": list(interface.joint_states_topics),
        "arm_command": [interface.arm_command_topic],
        "gripper_command": [gripper] if gripper else [],
        "tracks": [tracker["tracks_topic"]],
        "camera_info": [sim["camera_info_topic"]],
        "images": [sim["color_topic"], sim["depth_topic"]] if images else [],
        "sim": [sim["success_topic"], sim["perturbation_topic"], sim["ground_truth_topic"]],
        "operator": [teleop_p["cmd_vel_topic"], teleop_p["joy_topic"]] if teleop else [],
    }
    return {role: [resolve(t) for t in topics] for role, topics in roles.items()}

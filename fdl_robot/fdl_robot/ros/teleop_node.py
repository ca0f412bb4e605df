"""teleop_node: a gamepad (Joy) or a velocity command (Twist) -> the TCP -> arm and gripper commands.

    ros2 run joy joy_node &                                  # a gamepad (hold LB to move)
    ros2 run fdl_robot teleop_node --ros-args --params-file config/fdl_robot.yaml
    ros2 run teleop_twist_keyboard teleop_twist_keyboard     # or a keyboard, on cmd_vel

Once per control period dt = 1 / control_rate_hz the node asks
:class:`~fdl_robot.teleop.cartesian.Teleop` what the step does and publishes it: the TCP
target moved by the operator's velocity (integrated over dt, clamped to the workspace box),
turned into joints by the URDF's IK warm-started at the previous command, and filtered by the
same :class:`~fdl_robot.core.safety.SafetyLayer` with the same limits as policy_node's. The
math, the input selection and the watchdog are ``teleop.cartesian`` and ``teleop.joy``; this
node only parses, calls and publishes.

Inputs
------
``joy_topic`` (sensor_msgs/Joy): axes -> TCP velocity while the deadman ``joy_enable_button`` is
held (teleop_twist_joy's conventions, with a dead zone: ``teleop.joy``); ``joy_gripper_close_button``
/ ``joy_gripper_open_button`` request the gripper closed / open (the request holds).

``cmd_vel_topic`` (geometry_msgs/Twist, or TwistStamped with ``cmd_vel_stamped``): the TCP
velocity itself, m/s and rad/s in ``twist_frame`` axes (a stamped twist's frame_id, if set,
says which: ``base_frame`` or ``tcp_frame``). Used while the joystick is not moving the arm.

``joint_states_topic`` / ``gripper_joint_states_topic``: merged by name as in policy_node.

A message with NaN or inf, or a Joy with fewer axes than the mapping reads, is rejected: counted,
warned about (throttled), and it does not count as fresh.

Output: the same messages as policy_node's, on the same topics and interfaces
(``ros.commands``, robot profiles): one arm command and one gripper command per control step. A
recorder therefore sees teleoperated episodes as policy episodes. A JointTrajectory carries one
point due dt after the controller takes it: ``header.stamp`` is zero ("start on receipt", the
JointTrajectory contract), so a command delayed in transport runs late instead of being rejected
as ending in the past (with ``header.stamp`` = now and one point, 1.6 % of the arm's commands
were, driving the simulator at real time on this 2-core machine). There is no source image whose
stamp it could carry. One point only: the arm never moves more than one step past the operator's
last command.

Watchdog
--------
No fresh motion command (Joy and cmd_vel older than ``command_timeout_s``, or the deadman
released): ONE hold, the arm at its measured position with zero velocity and the gripper at its
last command, then nothing until the operator commands again; the motion resumes from the
measured pose (no drift, no jump to an old target). Joint states older than ``input_timeout_s``
or invalid: one hold, then nothing. Nothing is published before every joint has been received.

Services: ``~/reset`` (std_srvs/Trigger): forget the operator's inputs and the gripper request
(a new episode). Parameters are read at start-up only.
"""
from __future__ import annotations

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Twist, TwistStamped
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import JointState, Joy
from std_srvs.srv import Trigger

from fdl_robot.core.safety import SafetyConfig
from fdl_robot.policy.inputs import InputError, StepKind
from fdl_robot.policy.joint_states import JointStateMerger
from fdl_robot.ros import parameters
from fdl_robot.ros.base import NEW_TIME_BASE, SENSOR_QOS, FdlNode
from fdl_robot.ros.commands import CommandPublisher
from fdl_robot.ros.conversions import stamp_to_ns
from fdl_robot.ros.interfaces import RobotInterface
from fdl_robot.teleop.cartesian import Teleop, TeleopConfig
from fdl_robot.teleop.joy import JoyMapping

NODE = "teleop_node"


class TeleopNode(FdlNode):
    def __init__(self, **kwargs):
        super().__init__(NODE, **kwargs)
        p = self.params
        try:
            config = parameters.build_config(NODE, TeleopConfig, p)
            limits = parameters.build_config(NODE, SafetyConfig, p).limits()
            mapping = parameters.build_config(NODE, JoyMapping, p)
            self.interface = parameters.build_config(NODE, RobotInterface, p)
            model = self._model(p, config)
        except (ValueError, FileNotFoundError) as exc:
            raise ValueError(f"{NODE}: {exc}") from exc
        joints = JointStateMerger(self.interface.arm_joint_names, self.interface.gripper_joint,
                                  self.interface.gripper_scale())
        self.teleop = Teleop(config, limits, joints, mapping, model)
        self.dt_s = config.dt_s
        self.frames = {"": config.twist_frame, p["base_frame"]: "base", config.tcp_frame: "tool"}

        self.commands = CommandPublisher(self, self.interface, on_error=self.reject)
        for topic in self.interface.joint_states_topics:
            self.create_subscription(JointState, topic, self.on_joint_state, SENSOR_QOS)
        # best effort: receives from reliable (joy_node, teleop_twist_*) and best-effort publishers
        self.create_subscription(Joy, p["joy_topic"], self.on_joy, SENSOR_QOS)
        if p["cmd_vel_stamped"]:
            self.create_subscription(TwistStamped, p["cmd_vel_topic"], self.on_twist_stamped, SENSOR_QOS)
        else:
            self.create_subscription(Twist, p["cmd_vel_topic"], self.on_twist, SENSOR_QOS)
        self.create_service(Trigger, "~/reset", self.on_reset)
        self.add_on_set_parameters_callback(self.on_set_parameters)
        self.timer = self.create_timer(self.dt_s, self.on_timer)

    @staticmethod
    def _model(p, config: TeleopConfig):
        from fdl_robot.core.robot_model import RobotModel
        from fdl_robot.description import UR5E_URDF

        return RobotModel.from_urdf(p["urdf_path"] or UR5E_URDF, base_frame=p["base_frame"],
                                    tool_frame=config.tcp_frame, joint_names=p["arm_joint_names"])

    # --- inputs -------------------------------------------------------------------------

    def on_joint_state(self, msg: JointState) -> None:
        try:
            new_time_base = self.teleop.add_joint_state(msg.name, msg.position, stamp_to_ns(msg.header.stamp),
                                                        self.now_s())
        except InputError as exc:
            self.reject(exc.reason, str(exc))
            return
        if new_time_base:
            self.commands.reset()
            self.counters[NEW_TIME_BASE] += 1
            self.get_logger().info("joint-state stamps jumped back: a new time base, target reset")
        self.counters["ok joint_states"] += 1

    def on_joy(self, msg: Joy) -> None:
        try:
            self.teleop.add_joy(msg.axes, msg.buttons, self.now_s())
        except InputError as exc:
            self.reject(exc.reason, str(exc))
            return
        self.counters["ok joy"] += 1

    def on_twist(self, msg: Twist) -> None:
        self._add_twist(msg, self.teleop.config.twist_frame)

    def on_twist_stamped(self, msg: TwistStamped) -> None:
        frame = self.frames.get(msg.header.frame_id)
        if frame is None:
            self.reject("bad cmd_vel", f"frame '{msg.header.frame_id}', expected '' or one of "
                        f"{sorted(f for f in self.frames if f)}")
            return
        self._add_twist(msg.twist, frame)

    def _add_twist(self, twist: Twist, frame: str) -> None:
        linear = (twist.linear.x, twist.linear.y, twist.linear.z)
        angular = (twist.angular.x, twist.angular.y, twist.angular.z)
        try:
            self.teleop.add_twist(linear, angular, self.now_s(), frame)
        except InputError as exc:
            self.reject(exc.reason, str(exc))
            return
        self.counters["ok cmd_vel"] += 1

    # --- control step -----------------------------------------------------------------

    def on_timer(self) -> None:
        self.control_step(self.now_s())

    def control_step(self, now_s: float) -> bool:
        """One control step; True if it published (a command or a hold)."""
        step = self.teleop.step(now_s)
        if step.kind in (StepKind.WAIT, StepKind.STALE):
            return False
        stamp = Time()                      # start on receipt (module docstring)
        if step.kind is StepKind.HOLD:
            self.commands.hold(step.q_hold, stamp, self.dt_s)
            self.counters["holds"] += 1
            joints_stale = set(step.stale) & set(self.teleop.joints.joint_names)
            text = f"holding at the measured position: {', '.join(step.stale) or 'no motion command'}"
            # two call sites: rclpy refuses a second severity from one (ValueError "Logger severity
            # cannot be changed between calls"), which an operator pausing after stale joints raised
            if joints_stale:
                self.get_logger().warning(text)
            else:
                self.get_logger().info(text)
            return True
        if step.recovered:
            self.get_logger().info(f"commanding from {step.source}")
        self.commands.publish(step.command[None], stamp, [self.dt_s])
        self.counters["ok commands"] += 1
        return True

    # --- services and parameters ---------------------------------------------------------

    def on_reset(self, _request, response):
        self.teleop.reset()
        self.commands.reset()
        response.success, response.message = True, "teleop reset"
        return response

    def on_set_parameters(self, params) -> SetParametersResult:
        return self.refuse_startup_only(params) or SetParametersResult(successful=True)


def main(args=None) -> None:
    from fdl_robot.ros.runner import node_main

    node_main(TeleopNode)(args)


if __name__ == "__main__":
    main()

"""What every fdl_robot node shares: declared parameters, counters, throttled warnings.

A node never crashes and never publishes on bad input. It counts the reason in
``self.counters`` (exposed for tests and printed at shutdown) and logs a warning at most
once per ``WARN_PERIOD_S`` per reason, so a bad stream cannot flood the log.
"""
from __future__ import annotations

import time
from collections import Counter

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

from fdl_robot.ros import parameters
from fdl_robot.ros.parameter_check import check_sources, parameter_arguments

WARN_PERIOD_S = 2.0
SENSOR_QOS: QoSProfile = qos_profile_sensor_data   # best effort, keep last 5 (joint states)
RELIABLE_QOS = 10                                    # everything else: reliable, depth 10
#: The counter of the times a node's input stamps jumped back and it started over on a new
#: time base (:mod:`fdl_robot.core.timebase`); not a rejection.
NEW_TIME_BASE = "new time base"
_RELIABILITY = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}


def image_qos(values, prefix: str = "image_qos") -> QoSProfile:
    """The image QoS that parameters ``<prefix>_reliability`` and ``<prefix>_depth`` in
    ``values`` describe: keep last ``depth``, volatile (the defaults and why:
    :data:`fdl_robot.ros.parameters.IMAGE_PUBLISHER_QOS` and its neighbours).
    ValueError naming the parameter for a value that is not one."""
    reliability, depth = values[f"{prefix}_reliability"], values[f"{prefix}_depth"]
    if reliability not in _RELIABILITY:
        raise ValueError(f"{prefix}_reliability must be one of {list(_RELIABILITY)}, got '{reliability}'")
    if depth < 1:
        raise ValueError(f"{prefix}_depth must be >= 1, got {depth}")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth), reliability=_RELIABILITY[reliability],
                      durability=DurabilityPolicy.VOLATILE)


class FdlNode(Node):
    """rclpy Node with the parameters of ``node_name`` declared from the one table.

    The node's own arguments (``cli_args``) are checked before rcl reads them
    (:func:`~fdl_robot.ros.parameter_check.check_sources`: a YAML key or ``-p`` that
    matches no declared parameter raises ParameterError), the values by
    :func:`~fdl_robot.ros.parameters.declare`.
    """

    def __init__(self, node_name: str, **kwargs):
        self.counters: Counter[str] = Counter()      # before anything can fail: destroy_node reads it
        self._last_warn_s: dict[str, float] = {}
        check_sources(parameter_arguments(kwargs.get("cli_args")), [node_name])
        super().__init__(node_name, **kwargs)
        try:
            self.params = parameters.declare(self, node_name)
        except BaseException:
            super().destroy_node()
            raise

    def image_qos(self, prefix: str = "image_qos") -> QoSProfile:
        """:func:`image_qos` of this node's parameters; ValueError names node and parameter."""
        try:
            return image_qos(self.params, prefix)
        except ValueError as exc:
            raise ValueError(f"{self.get_name()}: {exc}") from None

    def now_s(self) -> float:
        """This node's clock (ROS time: the simulator's under use_sim_time), seconds."""
        return self.get_clock().now().nanoseconds * 1e-9

    def refuse_startup_only(self, params, runtime: frozenset[str] = frozenset()) -> SetParametersResult | None:
        """A failed result for the first of ``params`` that is this node's and not in ``runtime``
        (read at start-up only); None when every one may change at run time."""
        ours = {p.name for p in parameters.NODE_PARAMETERS[self.get_name()]}
        for param in params:
            if param.name in ours and param.name not in runtime:
                return SetParametersResult(successful=False,
                                           reason=f"'{param.name}' takes effect at start-up only; restart the node")
        return None

    def reject(self, reason: str, detail: str = "") -> None:
        """Count a rejected input and warn (throttled per reason)."""
        self.counters[reason] += 1
        now = time.monotonic()
        if now - self._last_warn_s.get(reason, -WARN_PERIOD_S) >= WARN_PERIOD_S:
            self._last_warn_s[reason] = now
            self.get_logger().warning(
                f"{reason}{': ' + detail if detail else ''} (seen {self.counters[reason]}x)")

    def destroy_node(self):
        bad = {k: v for k, v in self.counters.items() if not k.startswith("ok") and k != NEW_TIME_BASE}
        if bad:
            self.get_logger().info(f"rejected inputs: {dict(bad)}")
        return super().destroy_node()

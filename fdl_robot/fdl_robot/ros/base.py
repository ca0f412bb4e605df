"""What every fdl_robot node shares: declared parameters, counters, throttled warnings.

A node never crashes and never publishes on bad input. It counts the reason in
``self.counters`` (exposed for tests and printed at shutdown) and logs a warning at most
once per ``WARN_PERIOD_S`` per reason, so a bad stream cannot flood the log.
"""
from __future__ import annotations

import time
from collections import Counter

from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data

from fdl_robot.ros import parameters
from fdl_robot.ros.parameter_check import check_sources, parameter_arguments

WARN_PERIOD_S = 2.0
SENSOR_QOS: QoSProfile = qos_profile_sensor_data   # images: best effort, keep last 5
#: A consumer that must always work on the newest frame (the detector): best effort, keep
#: last 1. With depth 5, a detector that falls behind once works through a queue of stale
#: frames from then on (measured at real time on 2 cores: detections 180 ms old at p50).
LATEST_SENSOR_QOS: QoSProfile = QoSProfile(history=qos_profile_sensor_data.history, depth=1,
                                           reliability=qos_profile_sensor_data.reliability,
                                           durability=qos_profile_sensor_data.durability)
RELIABLE_QOS = 10                                    # everything else: reliable, depth 10


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

    def reject(self, reason: str, detail: str = "") -> None:
        """Count a rejected input and warn (throttled per reason)."""
        self.counters[reason] += 1
        now = time.monotonic()
        if now - self._last_warn_s.get(reason, -WARN_PERIOD_S) >= WARN_PERIOD_S:
            self._last_warn_s[reason] = now
            self.get_logger().warning(
                f"{reason}{': ' + detail if detail else ''} (seen {self.counters[reason]}x)")

    def destroy_node(self):
        bad = {k: v for k, v in self.counters.items() if not k.startswith("ok")}
        if bad:
            self.get_logger().info(f"rejected inputs: {dict(bad)}")
        return super().destroy_node()

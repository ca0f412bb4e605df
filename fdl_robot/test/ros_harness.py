"""A small harness for node tests: one context, the nodes under test, a probe node.

    with RosHarness() as ros:
        node = ros.add(TrackerNode, params={"n_init": 1})
        pub = ros.publisher(Object3DArray, "objects")
        got = ros.collect(TrackArray, "tracks")
        pub.publish(msg)
        ros.spin_until(lambda: got, timeout_s=5)
"""
from __future__ import annotations

import itertools
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor

_namespaces = itertools.count()


class RosHarness:
    def __init__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.namespace = f"/t{next(_namespaces)}"     # keeps tests from hearing each other
        self.probe = rclpy.create_node("probe", context=self.context, namespace=self.namespace)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.probe)
        self.nodes = [self.probe]

    def add(self, node_class, params: dict | None = None, **kwargs):
        args = ["--ros-args"]
        for key, value in (params or {}).items():
            args += ["-p", f"{key}:={_cli_value(value)}"]
        node = node_class(context=self.context, cli_args=args, namespace=self.namespace, **kwargs)
        self.executor.add_node(node)
        self.nodes.append(node)
        return node

    def publisher(self, msg_type, topic, qos=10):
        return self.probe.create_publisher(msg_type, topic, qos)

    def collect(self, msg_type, topic, qos=10) -> list:
        inbox: list = []
        self.probe.create_subscription(msg_type, topic, inbox.append, qos)
        return inbox

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.01)

    def spin_until(self, condition, timeout_s: float = 5.0) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.01)
        return bool(condition())

    def wait_for_subscribers(self, publisher, n: int = 1, timeout_s: float = 5.0) -> None:
        assert self.spin_until(lambda: publisher.get_subscription_count() >= n, timeout_s), \
            f"no subscriber on {publisher.topic_name}"

    def close(self) -> None:
        self.executor.shutdown()
        for node in reversed(self.nodes):
            node.destroy_node()
        rclpy.shutdown(context=self.context)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _cli_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_cli_value(v) for v in value) + "]"
    if isinstance(value, str):
        return value if value else "''"
    return repr(value)

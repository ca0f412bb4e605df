"""Replay a recorded camera stream through the perception nodes, frame by frame.

:func:`replay_perception` builds detector_node, localizer_node and tracker_node in one
process, as ``fdl-robot run --graph perception`` builds them (the runner, the defaults of
:mod:`fdl_robot.ros.parameters` written as a YAML, per-node overrides; the graph's
policy_node is left out), plays the bag's colour, aligned depth and camera_info topics
frame by frame -- each frame's messages, then spin until the tracker has published for
that frame -- and collects every output. No frame is dropped however slow the detector
(a frame still without tracker output after ``frame_timeout_s`` is counted in
``missing``), so two replays give identical outputs (a test checks it).

:mod:`fdl_robot.eval.replay` scores the outputs against the ground truth recorded in the
same bag; its command is this module's::

    python -m fdl_robot.bags.replay fdl_robot/test/data/sim_episode            # auto backend
    python -m fdl_robot.bags.replay BAG --backend ultralytics --model best.pt --json
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ReplayResult", "replay_perception", "default_backend"]

COLOR_TOPIC = "/camera/color/image_raw"
DEPTH_TOPIC = "/camera/aligned_depth_to_color/image_raw"
INFO_TOPIC = "/camera/color/camera_info"


def default_backend() -> str:
    """'ultralytics' once trained weights ship in fdl_robot/models/detector/, else 'color'."""
    from fdl_robot.perception.detector import default_model_path

    return "ultralytics" if default_model_path() else "color"


@dataclass
class ReplayResult:
    """Everything the nodes published during a replay, in arrival order."""

    backend: str
    frames: int                                       # images published
    detections: list = field(default_factory=list)    # Detection2DArray per frame
    objects: list = field(default_factory=list)       # Object3DArray per frame
    tracks: list = field(default_factory=list)        # TrackArray per frame
    missing: int = 0                                  # frames without tracker output in time
    wall_s: float = 0.0                               # replay time (frames only)


def _graph_config(path: Path, backend: str, model_path: str, overrides: dict | None) -> Path:
    import yaml

    from fdl_robot.ros import parameters

    config = yaml.safe_load(parameters.to_yaml())
    config["/**/detector_node"]["ros__parameters"].update(backend=backend, model_path=model_path)
    for node, params in (overrides or {}).items():
        config[f"/**/{node}"]["ros__parameters"].update(params)
    path.write_text(yaml.safe_dump(config))
    return path


def replay_perception(bag: str | Path, backend: str = "auto", model_path: str = "",
                      overrides: dict | None = None, frame_timeout_s: float = 10.0,
                      max_frames: int | None = None) -> ReplayResult:
    """Play ``bag`` frame by frame through detector, localizer and tracker (module docstring).

    ``overrides`` maps node names to parameter values on top of the defaults.
    """
    import rclpy
    from fdl_robot_interfaces.msg import Detection2DArray, Object3DArray, TrackArray
    from rclpy.executors import SingleThreadedExecutor

    from fdl_robot.bags.player import BagPlayer
    from fdl_robot.ros.graph import LaunchArguments
    from fdl_robot.ros.runner import build_nodes

    backend = default_backend() if backend == "auto" else backend
    context = rclpy.Context()
    rclpy.init(context=context)
    namespace = f"/replay_{time.monotonic_ns() % 10**9}"
    nodes, player = [], None
    executor = SingleThreadedExecutor(context=context)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = _graph_config(Path(tmp) / "graph.yaml", backend, model_path, overrides)
            nodes = build_nodes("perception", LaunchArguments(config=str(config), namespace=namespace),
                                context=context, only=["detector_node", "localizer_node", "tracker_node"])
        probe = rclpy.create_node("replay_probe", namespace=namespace, context=context)
        nodes.append(probe)
        for node in nodes:
            executor.add_node(node)
        result = ReplayResult(backend=backend, frames=0)
        probe.create_subscription(Detection2DArray, "detections", result.detections.append, 100)
        probe.create_subscription(Object3DArray, "objects", result.objects.append, 100)
        probe.create_subscription(TrackArray, "tracks", result.tracks.append, 100)
        player = BagPlayer(probe, bag, topics=[COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC], namespace=namespace)
        player.wait_for_subscribers([COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC],
                                    lambda: executor.spin_once(timeout_sec=0.01), timeout_s=10.0)
        for sub in ("detections", "objects", "tracks"):       # probe subscriptions matched too
            _spin_until(executor, lambda s=sub: probe.count_publishers(f"{namespace}/{s}") > 0, 10.0)
        start = time.monotonic()
        while max_frames is None or result.frames < max_frames:
            published = player.publish_until(COLOR_TOPIC)
            if not published or published[-1].topic != COLOR_TOPIC:
                break
            result.frames += 1
            want = result.frames - result.missing
            if not _spin_until(executor, lambda n=want: len(result.tracks) >= n, frame_timeout_s):
                result.missing += 1
        result.wall_s = time.monotonic() - start
        _spin_until(executor, lambda: False, 0.05)             # stragglers of the last frame
        return result
    finally:
        if player is not None:
            player.close()
        executor.shutdown()
        for node in reversed(nodes):
            node.destroy_node()
        rclpy.try_shutdown(context=context)


def _spin_until(executor, condition, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            return False
        executor.spin_once(timeout_sec=0.005)
    return True


if __name__ == "__main__":
    from fdl_robot.eval.replay import main

    raise SystemExit(main())

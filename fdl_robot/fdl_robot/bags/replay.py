"""Replay a recorded camera stream through the perception nodes, frame by frame.

:func:`replay_perception` builds detector_node, localizer_node and tracker_node in one
process, as ``fdl-robot run --graph perception`` builds them (the runner, the defaults of
:mod:`fdl_robot.ros.parameters` written as a YAML, per-node overrides; the graph's
policy_node is left out), plays the bag's colour, aligned depth and camera_info topics
frame by frame -- each frame's messages, then spin until the tracker has published for
that frame -- and collects every output. No frame is dropped however slow the detector
(a frame still without tracker output after ``frame_timeout_s`` is counted in
``missing``), so two replays give identical outputs (a test checks it).

``plays=N`` plays the bag N times through the same nodes, as a user replaying a bag
again does: each play by a new player (``fdl-robot-bag play`` run again), or with
``loop`` by one player that rewinds at the end (``fdl-robot-bag play --loop``). Stamps
and, with ``use_sim_time``, the nodes' clock (the player publishes the bag time on
``/clock``, ``--clock``; the nodes run with ``use_sim_time``, the runner's flag) jump back
at every new play; the nodes take it as a new time base, so every play scores the same
(``ReplayResult.play(i)``: the outputs of play i; ``counters``: each node's counts).

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


JOINT_STATES_TOPIC = "/joint_states"
PERCEPTION_NODES = ["detector_node", "localizer_node", "tracker_node"]


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
    # (frames, detections, objects, tracks, missing) counted when each play began
    play_starts: list = field(default_factory=list)
    counters: dict = field(default_factory=dict)      # node name -> its counters at the end

    def _marks(self) -> list[tuple[int, ...]]:
        return [*self.play_starts, (self.frames, len(self.detections), len(self.objects),
                                    len(self.tracks), self.missing)]

    @property
    def plays(self) -> int:
        return max(1, len(self.play_starts))

    def play(self, i: int) -> ReplayResult:
        """The outputs of play ``i`` (0-based) alone, as a replay of its own."""
        if not self.play_starts:
            if i != 0:
                raise IndexError(f"play {i} of a replay with 1 play")
            return self
        if not 0 <= i < len(self.play_starts):
            raise IndexError(f"play {i} of a replay with {len(self.play_starts)} plays")
        (f0, d0, o0, t0, m0), (f1, d1, o1, t1, m1) = self._marks()[i:i + 2]
        return ReplayResult(self.backend, f1 - f0, self.detections[d0:d1], self.objects[o0:o1],
                            self.tracks[t0:t1], m1 - m0)


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
                      max_frames: int | None = None, plays: int = 1, loop: bool = False,
                      use_sim_time: bool = False, nodes: list[str] | None = None) -> ReplayResult:
    """Play ``bag`` frame by frame through detector, localizer and tracker (module docstring).

    ``overrides`` maps node names to parameter values on top of the defaults;
    ``max_frames`` limits each play; ``plays``, ``loop`` and ``use_sim_time`` as in the
    module docstring. ``nodes``: the graph's nodes to run (default detector, localizer,
    tracker; add ``policy_node`` and the bag's ``/joint_states`` are played too).
    """
    if plays < 1:
        raise ValueError(f"plays must be >= 1, got {plays}")
    import rclpy
    from fdl_robot_interfaces.msg import Detection2DArray, Object3DArray, TrackArray
    from rclpy.executors import SingleThreadedExecutor

    from fdl_robot.bags.player import BagPlayer
    from fdl_robot.ros.graph import LaunchArguments
    from fdl_robot.ros.runner import build_nodes

    backend = default_backend() if backend == "auto" else backend
    names = list(PERCEPTION_NODES if nodes is None else nodes)
    topics = [COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC] + ([JOINT_STATES_TOPIC] if "policy_node" in names else [])
    context = rclpy.Context()
    rclpy.init(context=context)
    namespace = f"/replay_{time.monotonic_ns() % 10**9}"
    graph, player, probe = [], None, None
    executor = SingleThreadedExecutor(context=context)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = _graph_config(Path(tmp) / "graph.yaml", backend, model_path, overrides)
            graph = build_nodes("perception", LaunchArguments(config=str(config), namespace=namespace,
                                                              use_sim_time=use_sim_time),
                                context=context, only=names)
        probe = rclpy.create_node("replay_probe", namespace=namespace, context=context)
        for node in [*graph, probe]:
            executor.add_node(node)
        result = ReplayResult(backend=backend, frames=0)
        probe.create_subscription(Detection2DArray, "detections", result.detections.append, 100)
        probe.create_subscription(Object3DArray, "objects", result.objects.append, 100)
        probe.create_subscription(TrackArray, "tracks", result.tracks.append, 100)
        for sub in ("detections", "objects", "tracks"):       # probe subscriptions matched too
            _spin_until(executor, lambda s=sub: probe.count_publishers(f"{namespace}/{s}") > 0, 10.0)
        start = time.monotonic()
        for _ in range(plays):
            if player is None or not loop:                    # a new player, or --loop's rewind
                if player is not None:
                    player.close()
                player = BagPlayer(probe, bag, topics=topics, namespace=namespace, publish_clock=use_sim_time)
                player.wait_for_subscribers(topics, lambda: executor.spin_once(timeout_sec=0.01), timeout_s=10.0)
            else:
                player.rewind()
            result.play_starts.append((result.frames, len(result.detections), len(result.objects),
                                       len(result.tracks), result.missing))
            _play_frames(player, executor, result, max_frames, frame_timeout_s)
        result.wall_s = time.monotonic() - start
        _spin_until(executor, lambda: False, 0.05)             # stragglers of the last frame
        result.counters = {node.get_name(): dict(node.counters) for node in graph}
        return result
    finally:
        if player is not None:
            player.close()
        executor.shutdown()
        for node in reversed([*graph, *([probe] if probe is not None else [])]):
            node.destroy_node()
        rclpy.try_shutdown(context=context)


def _play_frames(player, executor, result: ReplayResult, max_frames: int | None, frame_timeout_s: float) -> None:
    """One play: each frame's messages, then spin until the tracker has published for it."""
    frames = 0
    while max_frames is None or frames < max_frames:
        published = player.publish_until(COLOR_TOPIC)
        if not published or published[-1].topic != COLOR_TOPIC:
            break
        frames += 1
        result.frames += 1
        want = result.frames - result.missing
        if not _spin_until(executor, lambda n=want: len(result.tracks) >= n, frame_timeout_s):
            result.missing += 1


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

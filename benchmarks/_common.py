"""Shared pieces of the graph benchmarks (bench_latency.py, soak.py).

* :func:`load_frames`: RGB-D frames of the MuJoCo cell rendered once (scripted expert
  doing a pick-and-place, camera sampled at 15 Hz of simulated time) and cached under
  ``outputs/bench/``, so that the benchmarks publish realistic images without measuring
  the renderer.
* :func:`write_config`: the graph's parameters YAML (generated from
  ``fdl_robot.ros.parameters``) with the benchmark's overrides.
* :class:`Graph`: the perception + policy graph started the way the README runs it:
  one process (``python -m fdl_robot.ros.runner run --graph perception``) or one process
  per node (``python -m fdl_robot.ros.<node>``, as ``ros2 launch`` would).
* :class:`FrameSource`: a camera_node stand-in that publishes the frames (colour, aligned
  depth, camera_info, with stamp = wall time at publishing) at a fixed rate from its own
  thread, plus ``joint_states`` at 50 Hz.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "outputs" / "bench"
PERCEPTION_NODES = ["detector_node", "localizer_node", "tracker_node", "policy_node"]



# --- frames -------------------------------------------------------------------------------

@dataclass
class Frames:
    rgb: np.ndarray            # (n, H, W, 3) uint8
    depth_mm: np.ndarray       # (n, H, W) uint16, 0 = invalid
    joints: np.ndarray         # (n, 7) arm joints (rad) + gripper closure at each frame
    K: np.ndarray              # (3, 3) intrinsics
    cam_xyz: np.ndarray        # (3,) calibrated (nominal) T_base_cam translation
    cam_quat_xyzw: np.ndarray  # (4,) its rotation

    def __len__(self) -> int:
        return len(self.rgb)


def load_frames(width: int = 640, height: int = 480, seed: int = 0, fps: float = 15.0,
                shadows: bool = True, cache_dir: Path = OUT_DIR) -> Frames:
    """The camera frames of one scripted-expert episode (cached as .npz)."""
    path = Path(cache_dir) / f"frames_{width}x{height}_seed{seed}_{fps:g}hz{'' if shadows else '_noshadow'}.npz"
    if path.is_file():
        z = np.load(path)
        return Frames(z["rgb"], z["depth_mm"], z["joints"], z["K"], z["cam_xyz"], z["cam_quat_xyzw"])
    from fdl_robot.sim.camera import depth_m_to_mm_uint16
    from fdl_robot.sim.env import PickPlaceConfig, PickPlaceEnv
    from fdl_robot.sim.expert import ScriptedExpert, run_expert_episode

    rgbs, depths, joints = [], [], []
    with PickPlaceEnv(PickPlaceConfig(image_width=width, image_height=height, shadows=shadows)) as env:
        period_s, next_t = 1.0 / fps, [0.0]

        def on_step(obs, _action):
            if obs["time_s"] + 1e-9 >= next_t[0]:
                next_t[0] += period_s
                rgb, depth_m = env.render_rgbd()
                rgbs.append(rgb)
                depths.append(depth_m_to_mm_uint16(depth_m))
                joints.append(np.append(obs["qpos"], obs["gripper"]))

        result = run_expert_episode(env, ScriptedExpert(env.model), seed, on_step=on_step)
        T = env.T_base_cam_nominal
        frames = Frames(np.stack(rgbs), np.stack(depths), np.array(joints), env.camera.K,
                        T.translation.copy(), T.as_quaternion())
    print(f"rendered {len(frames)} frames {width}x{height} (expert episode seed {seed}, "
          f"success {result.success}) -> {path}", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, rgb=frames.rgb, depth_mm=frames.depth_mm, joints=frames.joints,
                        K=frames.K, cam_xyz=frames.cam_xyz, cam_quat_xyzw=frames.cam_quat_xyzw)
    return frames


# --- configuration --------------------------------------------------------------------------

def write_config(path: Path, frames: Frames, backend: str = "color", model: str = "",
                 image_size: int = 320, policy: str = "scripted", policy_model: str = "",
                 extra: dict | None = None) -> Path:
    """The generated graph YAML with the benchmark's overrides (extrinsics = the cell's)."""
    import yaml

    from fdl_robot.ros import parameters

    config = yaml.safe_load(parameters.to_yaml())

    def node(name):
        return config[f"/**/{name}"]["ros__parameters"]

    node("detector_node").update(backend=backend, model_path=model, image_size=int(image_size))
    node("localizer_node").update(camera_xyz=[float(v) for v in frames.cam_xyz],
                                  camera_quat_xyzw=[float(v) for v in frames.cam_quat_xyzw])
    node("policy_node").update(policy=policy, model_path=policy_model)
    for name, values in (extra or {}).items():
        node(name).update(values)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# --- the graph under test -----------------------------------------------------------------------

class Graph:
    """The perception + policy nodes in one process (the runner) or one process each."""

    def __init__(self, mode: str, config: Path, namespace: str, log_dir: Path,
                 nodes: list[str] | None = None, executor: str = "runner", sensor_depth: int = 0):
        """``executor``: 'runner' runs the project's own entry points (``fdl-robot run``,
        ``python -m fdl_robot.ros.<node>``: MultiThreadedExecutor); 'single' / 'multi' run
        the same nodes through ``benchmarks/_graph_process.py`` with that executor."""
        if mode not in ("one-process", "multi-process"):
            raise ValueError(f"mode must be one-process or multi-process, got {mode}")
        self.mode, self.config, self.namespace = mode, Path(config), namespace
        self.executor, self.sensor_depth = executor, int(sensor_depth)
        if self.sensor_depth and executor == "runner":
            raise ValueError("--sensor-depth needs --executor single or multi")
        self.nodes = list(nodes or PERCEPTION_NODES)
        self.log_dir = Path(log_dir)
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def commands(self) -> list[tuple[str, list[str]]]:
        py = sys.executable
        if self.executor != "runner":
            helper = [py, str(Path(__file__).resolve().parent / "_graph_process.py"), "--executor",
                      self.executor, "--config", str(self.config), "--namespace", self.namespace,
                      "--sensor-depth", str(self.sensor_depth)]
            if self.mode == "one-process":
                return [("graph", helper)]
            return [(name, helper + ["--only", name]) for name in self.nodes]
        if self.mode == "one-process":
            return [("graph", [py, "-m", "fdl_robot.ros.runner", "run", "--graph", "perception",
                               "--config", str(self.config), "--namespace", self.namespace])]
        return [(name, [py, "-m", f"fdl_robot.ros.{name}", "--ros-args", "--params-file",
                        str(self.config), "-r", f"__ns:={self.namespace}"]) for name in self.nodes]

    def start(self) -> "Graph":
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name, cmd in self.commands():
            log = open(self.log_dir / f"{self.mode}_{self.executor}_{name}.log", "w")
            self.procs.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                                      cwd=REPO, env=os.environ.copy())))
            log.close()
        return self

    def pids(self) -> dict[str, int]:
        """Process name ('graph' or the node's name) -> pid."""
        return {name: p.pid for name, p in self.procs}

    def check_alive(self) -> None:
        dead = [(n, p.returncode) for n, p in self.procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"graph process(es) exited: {dead}; see the logs in {self.log_dir}")

    def stop(self, timeout_s: float = 15.0) -> dict[str, int | None]:
        for _, p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        codes = {}
        for name, p in self.procs:
            try:
                codes[name] = p.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                p.kill()
                codes[name] = p.wait()
        self.procs = []
        return codes


# --- the camera and arm stand-in ----------------------------------------------------------------

@dataclass
class PublishedFrame:
    index: int          # frame index in Frames
    stamp_ns: int       # header stamp = wall time just before publishing
    done_ns: int        # wall time when colour, depth and camera_info were published


@dataclass
class FrameSource:
    """Publishes frames at ``rate_hz`` (and joint states at 50 Hz) from its own thread."""

    node: object
    frames: Frames
    rate_hz: float
    joint_rate_hz: float = 50.0
    frame_id: str = "camera_color_optical_frame"
    published: list[PublishedFrame] = field(default_factory=list)
    max_records: int = 0           # > 0: keep only about this many of the latest records
    n_published: int = 0
    late: int = 0                  # frame deadlines missed by more than one period

    def __post_init__(self):
        from sensor_msgs.msg import CameraInfo, Image, JointState

        from fdl_robot.core.camera import PinholeCamera
        from fdl_robot.ros.base import RELIABLE_QOS, SENSOR_QOS
        from fdl_robot.ros.conversions import camera_to_camera_info, depth_to_image, rgb_to_image
        from fdl_robot.ros.parameters import ARM_JOINTS, GRIPPER_JOINT

        n = self.node
        self.color_pub = n.create_publisher(Image, "camera/color/image_raw", SENSOR_QOS)
        self.depth_pub = n.create_publisher(Image, "camera/aligned_depth_to_color/image_raw", SENSOR_QOS)
        self.info_pub = n.create_publisher(CameraInfo, "camera/color/camera_info", RELIABLE_QOS)
        self.joint_pub = n.create_publisher(JointState, "joint_states", RELIABLE_QOS)
        K = self.frames.K
        h, w = self.frames.rgb.shape[1:3]
        camera = PinholeCamera(K[0, 0], K[1, 1], K[0, 2], K[1, 2], width=w, height=h)
        zero = n.get_clock().now().to_msg()
        # messages built once; only the stamps change when they are published
        self.color_msgs = [rgb_to_image(x, zero, self.frame_id) for x in self.frames.rgb]
        self.depth_msgs = [depth_to_image(x, zero, self.frame_id) for x in self.frames.depth_mm]
        self.info_msg = camera_to_camera_info(camera, zero, self.frame_id)
        self.joint_msg = JointState(name=ARM_JOINTS + [GRIPPER_JOINT])
        self.frame_index = 0
        self._stop = threading.Event()
        self._frames_on = threading.Event()
        self._thread: threading.Thread | None = None

    def subscribers_ready(self) -> bool:
        return all(p.get_subscription_count() >= 1
                   for p in (self.color_pub, self.depth_pub, self.info_pub, self.joint_pub))

    def start(self) -> "FrameSource":
        self._thread = threading.Thread(target=self._run, name="frame_source", daemon=True)
        self._thread.start()
        return self

    def frames_on(self, on: bool = True) -> None:
        """Start or pause publishing camera frames (joint states keep going)."""
        (self._frames_on.set if on else self._frames_on.clear)()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        from fdl_robot.ros.conversions import ns_to_stamp

        frame_period, joint_period = round(1e9 / self.rate_hz), round(1e9 / self.joint_rate_hz)
        now = time.monotonic_ns()
        next_frame, next_joint = now, now
        while not self._stop.is_set():
            now = time.monotonic_ns()
            if now >= next_joint:
                i = self.frame_index % len(self.frames)
                self.joint_msg.header.stamp = ns_to_stamp(time.time_ns())
                self.joint_msg.position = [float(v) for v in self.frames.joints[i]]
                self.joint_pub.publish(self.joint_msg)
                next_joint += joint_period
                if now - next_joint > joint_period:
                    next_joint = now + joint_period
            if now >= next_frame:
                if self._frames_on.is_set():
                    self._publish_frame()
                next_frame += frame_period
                if now - next_frame > frame_period:       # fell behind: skip, never burst
                    self.late += 1
                    next_frame = now + frame_period
            wake = min(next_frame, next_joint) - time.monotonic_ns()
            if wake > 0:
                self._stop.wait(wake * 1e-9)

    def _publish_frame(self) -> None:
        from fdl_robot.ros.conversions import ns_to_stamp

        i = self.frame_index % len(self.frames)
        self.frame_index += 1
        stamp_ns = time.time_ns()
        stamp = ns_to_stamp(stamp_ns)
        color, depth, info = self.color_msgs[i], self.depth_msgs[i], self.info_msg
        for m in (color, depth, info):
            m.header.stamp = stamp
        # camera_node / sim_node order: colour, depth, camera_info
        self.color_pub.publish(color)
        self.depth_pub.publish(depth)
        self.info_pub.publish(info)
        self.published.append(PublishedFrame(i, stamp_ns, time.time_ns()))
        self.n_published += 1
        if self.max_records and len(self.published) > 2 * self.max_records:
            del self.published[:-self.max_records]


# --- small helpers -----------------------------------------------------------------------------

def percentiles(values, ps=(50, 95, 99)) -> dict:
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return {"n": 0, **{f"p{p}": None for p in ps}, "mean": None, "max": None}
    return {"n": int(v.size), **{f"p{p}": float(np.percentile(v, p)) for p in ps},
            "mean": float(v.mean()), "max": float(v.max())}


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, timeout=5).stdout.strip()
    except Exception:  # noqa: BLE001 - informational only
        return ""


def machine_info() -> dict:
    import platform

    return {"cpus": os.cpu_count(), "loadavg_1_5_15": list(os.getloadavg()),
            "nice": os.nice(0), "python": platform.python_version(), "git": git_commit()}

"""Demonstration bags -> datasets: ``fdl-robot-bags-to-dataset BAGS... --out DIR --format hdf5|lerobot``.

    fdl-robot-bags-to-dataset outputs/demo_bags/episode_* --out outputs/demos_hdf5 --format hdf5
    fdl-robot-train-act --data outputs/demos_hdf5 ...
    fdl-robot-bags-to-dataset outputs/demo_bags/episode_* --out outputs/demos_lerobot --format lerobot

Each bag is one episode (:mod:`fdl_robot.datasets.demo_bags`: topics, markers, features). It is
read once, in recorded order, into arrays on the control rate (:func:`read_episode`), then written:

* ``hdf5``: our ACT layout, ``DIR/episode_<i>.hdf5`` + ``DIR/dataset_info.json``, written by
  :meth:`fdl_robot.sim.dataset.RecordedEpisode.save` (the one writer of that layout; the
  trainer's :func:`~fdl_robot.policy.act.processor.load_episodes` reads it). ``observations/qpos``
  = observation.state, ``action`` = action, ``observations/objects/{red_cube,bin}`` = the
  tracked positions held between tracker outputs (environment_state), and
  ``observations/objects_noisy/red_cube`` the same with NaN where the latest ``/tracks`` had no
  eligible target. No ground truth: the objects come from ``/tracks``, and the attribute
  ``objects_source`` says so.
* ``lerobot``: a LeRobotDataset v3.0 at ``DIR`` through LeRobot's own API, written in the
  separate LeRobot venv (:mod:`fdl_robot.datasets.lerobot_writer`, a subprocess): this process
  hands it the arrays as ``.npz`` files and never imports lerobot.

Time alignment (all times are the bag's receipt times, on the recorder's clock: the simulator's
with ``use_sim_time``, else the wall clock). The rows are control ticks t_k = t_0 + k dt,
dt = 1 / ``CONTROL_FPS`` (20 ms), from t_0 = the first receipt after the start marker at which
every stream has a value (all joints, a target track, an arm and a gripper command), to the end
marker. Sample-and-hold, no future data:

* ``observation.state`` and ``observation.environment_state`` at row k: the latest joint state
  and the latest ``/tracks`` received at or before t_k (tracks describe the image of their
  stamp, 40-70 ms earlier; that latency is in the data, as the policy meets it). On the
  simulator's clock, which advances once per control step, "at" t_k includes everything received
  during step k: at most one step later than on a continuous clock.
* ``action`` at row k: the latest arm and gripper commands received before t_{k+1}: the
  command in force over step k, the operator's answer to the state at t_k.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from fdl_robot.cli_format import HelpFormatter
from fdl_robot.datasets.demo_bags import CONTROL_FPS, EPISODE_TOPIC, FEATURES, demo_topics
from fdl_robot.outputs import DIRECTORY, check_args, exit_on_error, write_json

__all__ = ["BagDataError", "EpisodeArrays", "ConversionReport", "FORMATS", "LEROBOT_VENV", "read_episode",
           "write_hdf5", "write_lerobot", "convert", "main"]

FORMATS = ("hdf5", "lerobot")
#: The LeRobot venv of scripts/setup_lerobot.sh, at the repository root.
LEROBOT_VENV = Path(__file__).resolve().parents[3] / ".venv-lerobot"
#: The task string of every LeRobot frame.
TASK = "pick the red cube and place it in the bin"
#: The LeRobot repo_id of a converted dataset (a name only: nothing is uploaded).
REPO_ID = "fdl_robot/demos"
DT_NS = round(1e9 / CONTROL_FPS)


class BagDataError(ValueError):
    """A bag that cannot become an episode; the message is one line naming the bag."""


@dataclass
class EpisodeArrays:
    """One episode on the control rate (module docstring): T rows, float64, base_link, SI units."""

    bag: Path
    seed: int | None
    success: bool
    reason: str                     # the end marker's reason ('success', 'failed', ..., 'no end marker')
    t_s: np.ndarray                 # (T,) tick times, s, on the bag's clock
    state: np.ndarray               # (T, 7) arm rad + gripper closure
    environment_state: np.ndarray   # (T, 6) target xyz, bin xyz (m), held
    action: np.ndarray              # (T, 7) commanded arm rad + gripper closure
    target_seen: np.ndarray         # (T,) bool: the latest /tracks had an eligible target
    images: dict[str, np.ndarray] = field(default_factory=dict)   # topic -> (T, H, W, 3) uint8, held
    start: dict = field(default_factory=dict)                     # the start marker

    def __len__(self) -> int:
        return len(self.t_s)


class _Streams:
    """A bag's messages of interest, in recorded order, as (receipt ns, value) lists."""

    def __init__(self, interface, inputs_config):
        from fdl_robot.policy.inputs import PolicyInputs
        from fdl_robot.policy.joint_states import JointStateMerger

        self.interface = interface
        self.scale = interface.gripper_scale()
        self.joints = JointStateMerger(interface.arm_joint_names, interface.gripper_joint, self.scale)
        self.inputs = PolicyInputs(inputs_config, JointStateMerger(interface.arm_joint_names,
                                                                   interface.gripper_joint, self.scale))
        self.state: list[tuple[int, np.ndarray]] = []
        self.objects: list[tuple[int, np.ndarray, bool]] = []   # (t, [target, bin], target seen)
        self.arm: list[tuple[int, np.ndarray]] = []
        self.gripper: list[tuple[int, float]] = []
        self.images: dict[str, list[tuple[int, np.ndarray]]] = {}
        self.markers: dict[str, tuple[int, dict]] = {}
        self._target: np.ndarray | None = None

    def joint_state(self, t_ns: int, msg) -> None:
        from fdl_robot.ros.conversions import stamp_to_ns

        try:
            self.joints.add(msg.name, msg.position, stamp_to_ns(msg.header.stamp), t_ns * 1e-9)
        except ValueError:
            return                                     # a rejected message, as policy_node rejects it
        q = self.joints.positions()
        if q is not None:
            self.state.append((t_ns, q))

    def tracks(self, t_ns: int, msg) -> None:
        from fdl_robot.ros.conversions import stamp_to_ns
        from fdl_robot.ros.policy_node import tracked_objects

        try:
            self.inputs.add_tracks(tracked_objects(msg), msg.header.frame_id, msg.header.stamp, t_ns * 1e-9,
                                   stamp_to_ns(msg.header.stamp) * 1e-9)
        except ValueError:
            return
        seen = self.inputs.target is not None
        if seen:
            self._target = np.array(self.inputs.target.p_base_m, dtype=np.float64)
        if self._target is not None:
            self.objects.append((t_ns, np.r_[self._target, self.inputs.bin_p_base_m], seen))

    def command(self, role: str, t_ns: int, msg) -> None:
        itf = self.interface
        if hasattr(msg, "points"):                       # JointTrajectory: point 0 is this step's
            if not msg.points:
                return
            by_name = dict(zip(msg.joint_names, msg.points[0].positions, strict=False))
        else:                                            # Float64MultiArray in the interface's order
            names = itf.arm_joint_names if role == "arm_command" else (itf.gripper_joint,)
            by_name = dict(zip(names, msg.data, strict=False))
        if role == "arm_command" and all(n in by_name for n in itf.arm_joint_names):
            self.arm.append((t_ns, np.array([by_name[n] for n in itf.arm_joint_names], dtype=np.float64)))
        elif role == "gripper_command" and itf.gripper_joint in by_name:
            self.gripper.append((t_ns, float(self.scale.to_closure(by_name[itf.gripper_joint]))))


def _held(times: np.ndarray, at: np.ndarray, side: str) -> np.ndarray:
    """Index of the latest sample at or before (``side`` 'right') / before ('left') each ``at``."""
    return np.searchsorted(times, at, side=side) - 1


def _check_topics(path: Path, roles: dict[str, list[str]], counts: dict[str, int]) -> None:
    for role in ("joint_states", "tracks", "arm_command", "gripper_command"):
        if not roles[role]:
            raise BagDataError(f"{path}: the robot profile's gripper has no command topic (action interface)")
        for topic in roles[role]:
            if not counts.get(topic):
                raise BagDataError(f"{path}: no {topic} in the bag ({role.replace('_', ' ')} are needed)")


def read_episode(path: str | Path, images: bool = False, interface=None, inputs_config=None) -> EpisodeArrays:
    """The episode of bag ``path`` on the control rate (module docstring). :class:`BagDataError`
    (one line, naming the bag and the topic) when a needed topic is missing or empty."""
    from fdl_robot.bags.reader import open_reader, read_messages
    from fdl_robot.policy.inputs import PolicyInputsConfig
    from fdl_robot.ros import parameters
    from fdl_robot.ros.conversions import image_to_rgb
    from fdl_robot.ros.interfaces import RobotInterface

    path = Path(path)
    interface = interface or RobotInterface()
    inputs_config = inputs_config or parameters.build_config("policy_node", PolicyInputsConfig,
                                                             parameters.defaults("policy_node"))
    roles = demo_topics(interface, images=images)
    with closing(open_reader(path)) as reader:
        counts = {name: info.msgcount for name, info in reader.topics.items()}
    _check_topics(path, roles, counts)
    streams = _Streams(interface, inputs_config)
    handlers = {t: streams.joint_state for t in roles["joint_states"]}
    handlers.update({t: streams.tracks for t in roles["tracks"]})
    for role in ("arm_command", "gripper_command"):
        handlers.update({t: (lambda t_ns, m, r=role: streams.command(r, t_ns, m)) for t in roles[role]})
    image_topics = [t for t in roles["images"] if "depth" not in t and counts.get(t)]
    started = False
    for topic, t_ns, msg in read_messages(path, [*handlers, *image_topics, EPISODE_TOPIC]):
        if topic == EPISODE_TOPIC:
            marker = json.loads(msg.data)
            streams.markers.setdefault(marker.get("event", "?"), (t_ns, marker))
            started = "start" in streams.markers
            if "end" in streams.markers:
                break
        elif started or EPISODE_TOPIC not in counts:
            if topic in image_topics:
                streams.images.setdefault(topic, []).append((t_ns, image_to_rgb(msg)))
            else:
                handlers[topic](t_ns, msg)
    return _resample(path, streams, images)


def _resample(path: Path, s: _Streams, images: bool) -> EpisodeArrays:
    for name, stream in (("joint states", s.state), ("a target track", s.objects), ("arm commands", s.arm),
                         ("gripper commands", s.gripper)):
        if not stream:
            raise BagDataError(f"{path}: no {name} in the episode (between its start and end markers)")
    times = {k: np.array([x[0] for x in v], dtype=np.int64)
             for k, v in (("state", s.state), ("objects", s.objects), ("arm", s.arm), ("gripper", s.gripper))}
    t0 = max(int(v[0]) for v in times.values())
    end_ns = s.markers["end"][0] if "end" in s.markers else max(int(v[-1]) for v in times.values())
    ticks = t0 + DT_NS * np.arange(max((end_ns - t0) // DT_NS + 1, 0), dtype=np.int64)
    if not len(ticks):
        raise BagDataError(f"{path}: the episode ends before every stream has a value")
    i_state, i_obj = _held(times["state"], ticks, "right"), _held(times["objects"], ticks, "right")
    i_arm, i_grip = _held(times["arm"], ticks + DT_NS, "left"), _held(times["gripper"], ticks + DT_NS, "left")
    held_images = {}
    for topic, frames in s.images.items() if images else ():
        frame_t = np.array([t for t, _ in frames], dtype=np.int64)
        idx = np.maximum(_held(frame_t, ticks, "right"), 0)    # before the first frame: the first one
        held_images[topic] = np.stack([frames[i][1] for i in idx])
    start = s.markers.get("start", (0, {}))[1]
    end = s.markers.get("end", (0, {"success": False, "reason": "no end marker"}))[1]
    return EpisodeArrays(
        bag=path, seed=start.get("seed"), success=bool(end.get("success", False)),
        reason=str(end.get("reason", "")), t_s=ticks * 1e-9,
        state=np.stack([s.state[i][1] for i in i_state]),
        environment_state=np.stack([s.objects[i][1] for i in i_obj]),
        action=np.column_stack([np.stack([s.arm[i][1] for i in i_arm]), [s.gripper[i][1] for i in i_grip]]),
        target_seen=np.array([s.objects[i][2] for i in i_obj], dtype=bool), images=held_images, start=start)


# --- writers ----------------------------------------------------------------------------------

def write_hdf5(episodes: list[EpisodeArrays], out: Path) -> list[dict]:
    """``out/episode_<i>.hdf5`` in the ACT layout (module docstring); returns their summaries."""
    from fdl_robot import __version__
    from fdl_robot.core.geometry import matrix_to_quaternion
    from fdl_robot.core.kinematics import TCP_FRAME
    from fdl_robot.core.robot_model import ur5e_gripper
    from fdl_robot.sim.dataset import GRIPPER_CONVENTION, RecordedEpisode

    model = ur5e_gripper()
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    for i, ep in enumerate(episodes):
        T_tcp = model.frame_pose(ep.state[:, :6], TCP_FRAME)
        qvel = np.vstack([np.zeros((1, 7)), np.diff(ep.state, axis=0) * CONTROL_FPS])   # backward difference
        target, bin_p = ep.environment_state[:, :3], ep.environment_state[:, 3:]
        rec = RecordedEpisode(
            seed=-1 if ep.seed is None else int(ep.seed), qpos=list(ep.state), qvel=list(qvel), action=list(ep.action),
            time_s=list(ep.t_s - ep.t_s[0]),
            tcp_pose=[np.r_[T[:3, 3], matrix_to_quaternion(T[:3, :3])] for T in T_tcp],
            objects={"red_cube": list(target), "bin": list(bin_p)},
            objects_noisy={"red_cube": list(np.where(ep.target_seen[:, None], target, np.nan)), "bin": list(bin_p)},
            images={Path(topic).parent.name or "color": list(frames) for topic, frames in ep.images.items()})
        rec.attrs = {"seed": rec.seed, "success": ep.success, "dt": 1.0 / CONTROL_FPS,
                     "end_reason": ep.reason, "source_bag": str(ep.bag), "start_marker": json.dumps(ep.start),
                     "objects_source": "/tracks (perception), held between tracker outputs; no ground truth",
                     "joint_names": json.dumps(list(FEATURES["observation.state"])),
                     "object_names": json.dumps(["red_cube", "bin"]), "gripper_convention": GRIPPER_CONVENTION,
                     "frame": "base_link (x forward, y left, z up), metres",
                     "generator": f"fdl_robot {__version__} datasets.bags_to_dataset"}
        name = f"episode_{i}.hdf5"
        rec.save(out / name)
        saved.append({"file": name, "bag": str(ep.bag), "seed": ep.seed, "success": ep.success, "steps": len(ep)})
    return saved


def lerobot_python(venv: Path = LEROBOT_VENV) -> Path:
    """The LeRobot venv's interpreter; FileNotFoundError saying how to build it."""
    python = Path(venv) / "bin" / "python"
    if not python.exists():
        raise FileNotFoundError(f"no LeRobot environment at {venv}: build it with bash scripts/setup_lerobot.sh")
    return python


def run_in_lerobot_venv(args: list[str], venv: Path = LEROBOT_VENV, **kwargs) -> subprocess.CompletedProcess:
    """``python -m fdl_robot.datasets.lerobot_writer ARGS`` in the LeRobot venv, offline, with this
    repository's fdl_robot on PYTHONPATH (it is not installed there)."""
    package_root = Path(__file__).resolve().parents[2]              # the directory holding fdl_robot/
    env = {**os.environ, "PYTHONPATH": str(package_root), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    env.pop("PYTHONHOME", None)
    return subprocess.run([str(lerobot_python(venv)), "-m", "fdl_robot.datasets.lerobot_writer", *args],
                          env=env, text=True, **kwargs)


def write_lerobot(episodes: list[EpisodeArrays], out: Path, repo_id: str, video: bool = False,
                  venv: Path = LEROBOT_VENV) -> dict:
    """A LeRobotDataset v3.0 at ``out`` (must not exist), written in the LeRobot venv; its summary."""
    with tempfile.TemporaryDirectory(prefix="fdl_lerobot_") as tmp:
        spec = {"repo_id": repo_id, "fps": CONTROL_FPS, "task": TASK, "robot_type": "ur5e_gripper_sim",
                "features": {k: list(v) for k, v in FEATURES.items()}, "video": bool(video),
                "episodes": []}
        for i, ep in enumerate(episodes):
            arrays = {"observation.state": ep.state, "observation.environment_state": ep.environment_state,
                      "action": ep.action}
            arrays.update({f"observation.images.{Path(t).parent.name or 'color'}": v for t, v in ep.images.items()})
            name = f"episode_{i}.npz"
            np.savez(Path(tmp) / name, **arrays)
            spec["episodes"].append(name)
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        result = run_in_lerobot_venv(["write", tmp, str(out)], venv, capture_output=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"the LeRobot writer failed (exit {result.returncode}): {tail[0]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- the command ----------------------------------------------------------------------------------

@dataclass
class ConversionReport:
    converted: list[EpisodeArrays]
    skipped: dict[str, str]          # bag -> why (failed episodes without --keep-failures)
    written: object                  # hdf5: the episodes' summaries; lerobot: the writer's summary
    wall_s: float


def convert(bags: Sequence[str | Path], out: str | Path, fmt: str = "hdf5", keep_failures: bool = False,
            images: bool = False, repo_id: str = REPO_ID, progress: bool = True) -> ConversionReport:
    """Read every bag (:func:`read_episode`), skip the episodes that did not succeed unless
    ``keep_failures``, write ``out`` in ``fmt``."""
    from tqdm import tqdm

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got '{fmt}'")
    t0 = time.monotonic()
    out = Path(out)
    episodes, skipped = [], {}
    for bag in tqdm(list(bags), desc="reading bags", unit="bag", disable=not progress):
        ep = read_episode(bag, images=images)
        if ep.success or keep_failures:
            episodes.append(ep)
        else:
            skipped[str(bag)] = ep.reason or "not succeeded"
    if not episodes:
        raise BagDataError(f"no episode to write: {len(skipped)} of {len(skipped)} bags did not succeed "
                           "(--keep-failures writes them)")
    if fmt == "hdf5":
        written = write_hdf5(episodes, out)
        write_json(out / "dataset_info.json", {"episodes": written, "n_saved": len(written), "skipped": skipped,
                                               "fps": CONTROL_FPS, "source": "fdl-robot-bags-to-dataset"},
                   "dataset info", indent=1)
    else:
        written = write_lerobot(episodes, out, repo_id, video=images)
    return ConversionReport(episodes, skipped, written, time.monotonic() - t0)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fdl-robot-bags-to-dataset", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("bags", nargs="+", type=Path, help="demonstration bags (fdl-robot-record-demos), one episode each")
    p.add_argument("--out", type=Path, required=True,
                   help="hdf5: a directory of episode_<i>.hdf5; lerobot: the dataset root (must not exist)")
    p.add_argument("--format", choices=FORMATS, default="hdf5")
    p.add_argument("--keep-failures", action="store_true", help="also write episodes that did not succeed")
    p.add_argument("--images", action="store_true",
                   help="colour images too (hdf5: observations/images/<cam>; lerobot: observation.images.<cam> "
                        "as video)")
    p.add_argument("--repo-id", default=REPO_ID, help="LeRobot repo_id (local only, nothing is uploaded)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p


@exit_on_error
def main(argv: Sequence[str] | None = None) -> int:
    from fdl_robot.bags.reader import BagError

    parser = _parser()
    args = parser.parse_args(argv)
    if args.format == "hdf5":
        check_args(parser, args, {"--out": DIRECTORY})
    elif args.out.exists():
        parser.error(f"--out {args.out} exists: a LeRobotDataset is created in a new directory")
    try:
        report = convert(args.bags, args.out, args.format, args.keep_failures, args.images, args.repo_id,
                         args.progress)
    except (BagError, BagDataError, FileNotFoundError, RuntimeError) as exc:
        raise SystemExit(f"error: {exc}") from None
    rows = sum(len(e) for e in report.converted)
    print(f"{len(report.converted)} episodes ({rows} frames at {CONTROL_FPS} Hz) -> {args.out} ({args.format}); "
          f"{len(report.skipped)} skipped (not succeeded{', see --keep-failures' if report.skipped else ''}); "
          f"{report.wall_s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

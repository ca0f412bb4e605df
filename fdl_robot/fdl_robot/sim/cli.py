"""Command line of the simulator: record demonstrations, evaluate the expert, benchmark.

    python -m fdl_robot.sim.cli record   --episodes 50 --out data/sim_demos [--images] [--depth]
    python -m fdl_robot.sim.cli evaluate --episodes 100 --strip strip.png [--video episode.mp4]
    python -m fdl_robot.sim.cli bench    [--seconds 20] [--camera-hz 15] [--width 640 --height 480]
    python -m fdl_robot.sim.cli snapshot --seed 0 --out scene.png

Each subcommand also has its own ``*_main`` function for console-script entry points.
``evaluate`` is :mod:`fdl_robot.eval.sim_expert`. Output paths are checked before any work
(:mod:`fdl_robot.outputs`); a failed write ends the command with one line and status 1.
Rendering is headless (``MUJOCO_GL=egl``, set by :mod:`fdl_robot.sim` if unset).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from fdl_robot.cli_format import HelpFormatter
from fdl_robot.outputs import DIRECTORY, IMAGE, Output, check_args, exit_on_error, write_image

__all__ = ["main", "record_main", "evaluate_main", "bench_main", "snapshot_main"]


# --------------------------------------------------------------------------- record
def _record_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--episodes", type=int, default=50, help="number of successful episodes to save")
    p.add_argument("--out", type=Path, required=True, help="output directory (episode_<i>.hdf5)")
    p.add_argument("--seed0", type=int, default=0, help="first seed (seeds seed0, seed0+1, ... are tried)")
    p.add_argument("--steps", type=int, default=450, help="control steps per episode (50 Hz)")
    p.add_argument("--images", action="store_true", help="record camera images every step")
    p.add_argument("--depth", action="store_true", help="with --images, also record uint16 mm depth")
    p.add_argument("--camera", action="append", default=None,
                   help="camera to record (repeatable; default scene_cam)")
    p.add_argument("--width", type=int, default=320, help="image width for --images")
    p.add_argument("--height", type=int, default=240, help="image height for --images")
    p.add_argument("--keep-failures", action="store_true", help="also save episodes the expert failed")
    p.add_argument("--no-align-yaw", action="store_true",
                   help="grasp at the arm's natural yaw instead of the cube's (position-only demos)")
    return p


def _record(args: argparse.Namespace) -> int:
    from fdl_robot.sim.dataset import record_demos
    from fdl_robot.sim.env import PickPlaceConfig
    from fdl_robot.sim.expert import ExpertConfig

    cams = tuple(args.camera or ["scene_cam"]) if args.images else ()
    t0 = time.perf_counter()
    saved = record_demos(args.episodes, args.out, seed0=args.seed0, episode_steps=args.steps,
                         env_config=PickPlaceConfig(image_width=args.width, image_height=args.height),
                         expert_config=ExpertConfig(align_yaw=not args.no_align_yaw),
                         camera_names=cams, record_depth=args.depth and bool(cams),
                         keep_failures=args.keep_failures)
    print(f"saved {len(saved)} episodes to {args.out} in {time.perf_counter() - t0:.1f} s")
    return 0


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None, outputs: dict[str, Output]):
    """``parser``'s arguments of ``argv``, their output paths checked (parser.error if one fails)."""
    args = parser.parse_args(argv)
    check_args(parser, args, outputs)
    return args


RECORD_OUTPUTS = {"--out": DIRECTORY}
SNAPSHOT_OUTPUTS = {"--out": IMAGE}


@exit_on_error
def record_main(argv: Sequence[str] | None = None) -> int:
    """Console entry: record expert demonstrations (see ``--help``)."""
    return _record(_parse(_record_parser(argparse.ArgumentParser(description="Record expert demos (ACT HDF5).",
                                                                 formatter_class=HelpFormatter)),
                          argv, RECORD_OUTPUTS))


# --------------------------------------------------------------------------- evaluate
def _evaluate_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from fdl_robot.eval.sim_expert import add_expert_arguments

    return add_expert_arguments(p)


def _evaluate(args: argparse.Namespace) -> int:
    from fdl_robot.eval.sim_expert import evaluate_from_arguments

    return evaluate_from_arguments(args)


def _evaluate_outputs() -> dict[str, Output]:
    from fdl_robot.eval.sim_expert import EXPERT_OUTPUTS

    return EXPERT_OUTPUTS


@exit_on_error
def evaluate_main(argv: Sequence[str] | None = None) -> int:
    """Console entry: expert success rate over N seeds, image strip / video of one episode."""
    return _evaluate(_parse(_evaluate_parser(argparse.ArgumentParser(description="Evaluate the scripted expert.",
                                                                     formatter_class=HelpFormatter)),
                            argv, _evaluate_outputs()))


# --------------------------------------------------------------------------- bench
def _bench_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--seconds", type=float, default=20.0, help="simulated seconds per measurement")
    p.add_argument("--camera-hz", type=float, default=15.0)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--no-shadows", action="store_true", help="render without shadow mapping")
    return p


def _bench(args: argparse.Namespace) -> int:
    from fdl_robot.sim.env import PickPlaceConfig, PickPlaceEnv
    from fdl_robot.sim.expert import ScriptedExpert

    env = PickPlaceEnv(PickPlaceConfig(image_width=args.width, image_height=args.height, max_episode_steps=0,
                                       shadows=not args.no_shadows))
    expert = ScriptedExpert(env.model)
    n_steps = int(round(args.seconds / env.control_dt_s))

    def run(render: bool) -> tuple[float, float, int]:
        """(wall seconds, expert seconds, frames) for n_steps control steps from a fresh episode."""
        obs = env.reset(0)
        expert.reset()
        next_frame_s, frames, expert_s, episodes = 0.0, 0, 0.0, 1
        t0 = time.perf_counter()
        for _ in range(n_steps):
            if obs["time_s"] > 8.0:  # keep the arm busy: restart the task every 8 s
                obs = env.reset(episodes)
                episodes += 1
                expert.reset()
                next_frame_s = obs["time_s"]
            te = time.perf_counter()
            action = expert.act(obs)
            expert_s += time.perf_counter() - te
            obs, *_ = env.step(action)
            if render and obs["time_s"] + 1e-9 >= next_frame_s:
                env.render_rgbd()
                frames += 1
                next_frame_s += 1.0 / args.camera_hz
        return time.perf_counter() - t0, expert_s, frames

    env.render_rgbd()  # create the GL context outside the timing
    sim_s = n_steps * env.control_dt_s
    wall, expert_s, _ = run(render=False)
    print(f"physics (500 Hz) + control (50 Hz) + expert IK: {sim_s:.0f} s simulated in {wall:.2f} s "
          f"-> real-time factor {sim_s / wall:.1f} (expert IK {1000 * expert_s / n_steps:.2f} ms/step)")
    wall_r, _, frames = run(render=True)
    print(f"  + RGB-D {args.width}x{args.height}{' (no shadows)' if args.no_shadows else ''} at "
          f"{args.camera_hz:g} Hz ({frames} frames): "
          f"{wall_r:.2f} s -> real-time factor {sim_s / wall_r:.2f} "
          f"({1000 * (wall_r - wall) / max(frames, 1):.1f} ms per RGB-D frame)")
    env.close()
    return 0


def bench_main(argv: Sequence[str] | None = None) -> int:
    """Console entry: real-time factor of physics+control, with and without the camera."""
    return _bench(_bench_parser(argparse.ArgumentParser(description="Simulator real-time factor.",
                                                             formatter_class=HelpFormatter)).parse_args(argv))


# --------------------------------------------------------------------------- snapshot
def _snapshot_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("sim_snapshot.png"))
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    return p


def _snapshot(args: argparse.Namespace) -> int:
    import cv2

    from fdl_robot.eval.media import colorize_depth
    from fdl_robot.sim.env import PickPlaceConfig, PickPlaceEnv

    with PickPlaceEnv(PickPlaceConfig(image_width=args.width, image_height=args.height)) as env:
        env.reset(args.seed)
        rgb, depth = env.render_rgbd()
        seg = env.render_segmentation()
        wrist = env.render_rgb("wrist_cam")
    depth_vis = cv2.cvtColor(colorize_depth(depth, 0.3, 1.8), cv2.COLOR_RGB2BGR)
    palette = np.array([[40, 40, 40], [180, 180, 180], [0, 0, 255], [0, 200, 0], [0, 200, 200],
                        [200, 0, 200], [255, 120, 0]], dtype=np.uint8)
    tiles = [cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), depth_vis, palette[seg % len(palette)],
             cv2.cvtColor(wrist, cv2.COLOR_RGB2BGR)]
    grid = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
    write_image(args.out, grid, "snapshot")
    print(f"seed {args.seed}: RGB | depth / segmentation | wrist camera -> {args.out}")
    return 0


@exit_on_error
def snapshot_main(argv: Sequence[str] | None = None) -> int:
    """Console entry: one scene as RGB, depth, segmentation and wrist view."""
    return _snapshot(_parse(_snapshot_parser(argparse.ArgumentParser(description="Render one scene.",
                                                                     formatter_class=HelpFormatter)), argv,
                            SNAPSHOT_OUTPUTS))


# --------------------------------------------------------------------------- main
@exit_on_error
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fdl_robot.sim.cli {record,evaluate,bench,snapshot} ...``"""
    parser = argparse.ArgumentParser(prog="fdl_sim", description=__doc__.splitlines()[0],
                                     formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {
        "record": (_record_parser, _record, "record expert demonstrations (ACT HDF5)", RECORD_OUTPUTS),
        "evaluate": (_evaluate_parser, _evaluate, "expert success rate, image strip, video", None),
        "bench": (_bench_parser, _bench, "real-time factor with and without the camera", {}),
        "snapshot": (_snapshot_parser, _snapshot, "render RGB, depth, segmentation of one scene", SNAPSHOT_OUTPUTS),
    }
    parsers = {name: build(sub.add_parser(name, help=help_text, formatter_class=HelpFormatter))
               for name, (build, _, help_text, _) in commands.items()}
    args = parser.parse_args(argv)
    _, run, _, outputs = commands[args.command]
    check_args(parsers[args.command], args, _evaluate_outputs() if outputs is None else outputs)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

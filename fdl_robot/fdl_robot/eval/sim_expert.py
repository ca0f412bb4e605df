"""The scripted expert in the simulator: success over held-out seeds (``fdl_sim evaluate``).

    fdl_sim evaluate --episodes 100 --strip strip.png [--video episode.mp4]

Each episode is :func:`fdl_robot.sim.expert.run_expert_episode`: ``PickPlaceEnv.reset(seed)``,
then expert and physics alternate exactly, one control step each, until the expert is
done (plus its settling steps) or the episode limit. Success = ``env.success()`` at the
end (the cube at rest inside the bin). Reported: success K/N with the 95 % Wilson
interval, the time to done, retries and IK failures, the failed seeds, the real-time
factor; optionally the per-seed results (JSON) and an image strip and video of the first
episode (every second control step rendered, captioned with time and expert phase).
"""
from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fdl_robot.cli_format import HelpFormatter
from fdl_robot.core.robot import CONTROL_DT_S, CONTROL_RATE_HZ
from fdl_robot.eval.base import EvalConfig, OwnsSimulator, add_arguments, from_arguments
from fdl_robot.eval.media import caption, colorize_depth, evenly_spaced, write_strip, write_video
from fdl_robot.eval.stats import SuccessSummary
from fdl_robot.outputs import IMAGE, JSON, VIDEO, check_args, exit_on_error, write_json
from fdl_robot.sim.perturbations import PERTURBATIONS

__all__ = ["EXPERT_EVAL", "EXPERT_OUTPUTS", "ExpertEvaluator", "ExpertReport", "add_expert_arguments",
           "evaluate_from_arguments", "main"]

#: The expert's evaluations (here and through ROS, :mod:`fdl_robot.eval.ros_expert`): seeds
#: from 1000 on, held out from the recorded demonstrations (``fdl_sim record`` starts at 0);
#: a 12 s limit instead of the default, the limit the expert's published figures were measured with.
EXPERT_EVAL = EvalConfig(seed0=1000, max_sim_s=12.0)
#: Frames of the first episode: every FRAME_EVERY-th control step.
FRAME_EVERY = 2


@dataclass(frozen=True)
class ExpertReport:
    """Per-seed results (``sim.expert.EpisodeResult``) and what the command prints."""

    results: list
    summary: SuccessSummary
    wall_s: float
    rendered: bool          # the first episode was rendered (counts in wall_s)
    frames: int             # frames of the first episode in the strip / video

    def lines(self) -> list[str]:
        done = [r.expert_done_step * CONTROL_DT_S for r in self.results if r.expert_done_step is not None]
        sim_s = sum(r.duration_s for r in self.results)
        return [f"expert success: {self.summary}",
                f"mean time to done: {np.mean(done):.2f} s (min {np.min(done):.2f}, max {np.max(done):.2f}) "
                f"= {np.mean(done) / CONTROL_DT_S:.0f} control steps",
                f"retries: {sum(r.retries for r in self.results)}, replans: {sum(r.replans for r in self.results)}, "
                f"IK non-converged steps: {sum(r.ik_failures for r in self.results)}",
                f"failed seeds: {list(self.summary.failed_seeds)}",
                f"simulated {sim_s:.0f} s in {self.wall_s:.0f} s wall (real-time factor {sim_s / self.wall_s:.1f}, "
                f"{'incl.' if self.rendered else 'no'} rendering of the first episode)"]


#: Depth range shown in the strip's depth images beyond the camera's minimum range, metres.
DEPTH_SPAN_M = {"wrist_cam": 0.5}


class ExpertEvaluator(OwnsSimulator):
    """Runs a :class:`~fdl_robot.sim.expert.ScriptedExpert` over ``config``'s seeds in its own env.

    ``strip`` / ``video``: image strip (``strip_frames`` frames) / MP4 of the first episode,
    written as soon as it ends (a failed write, OutputError, stops the run there), seen by
    ``camera`` (None: the scene camera); with ``depth_model`` each frame has that camera's
    depth image (through the model, ``sim.depth_model``) under its colour image.
    ``perturbation``: the scene perturbation of every episode (``sim.perturbations``).
    """

    def __init__(self, config: EvalConfig = EXPERT_EVAL, width: int = 320, height: int = 240,
                 strip: Path | None = None, strip_frames: int = 8, video: Path | None = None,
                 progress: bool = True, camera: str | None = None, depth_model: str | None = None,
                 perturbation: str = "none"):
        from fdl_robot.sim.env import PickPlaceConfig, PickPlaceEnv

        self.config = config
        self.strip, self.strip_frames, self.video, self.progress = strip, strip_frames, video, progress
        self.camera, self.with_depth = camera, depth_model is not None
        self.env = PickPlaceEnv(PickPlaceConfig(image_width=width, image_height=height,
                                                max_episode_steps=config.max_steps,
                                                depth_model=depth_model or "ideal", perturbation=perturbation))

    def _frame(self) -> np.ndarray:
        if not self.with_depth:
            return self.env.render_rgb(self.camera)
        rgb, depth = self.env.render_rgbd(self.camera)
        near = self.env.depth_sensor(self.camera).min_depth_m
        return np.vstack([rgb, colorize_depth(depth, near, near + DEPTH_SPAN_M.get(self.camera, 1.5))])

    def run(self, expert: Any) -> ExpertReport:
        from tqdm import tqdm

        from fdl_robot.sim.expert import run_expert_episode

        env = self.env
        frames: list[np.ndarray] = []
        want_frames = self.strip is not None or self.video is not None

        def capture(obs: dict, _action: np.ndarray) -> None:
            if round(obs["time_s"] / env.control_dt_s) % FRAME_EVERY == 0:
                frames.append(caption(self._frame(), f"{obs['time_s']:.1f}s {expert.phase}"))

        results = []
        t0 = time.perf_counter()
        bar = tqdm(self.config.seeds, desc="expert", unit="ep", disable=not self.progress)
        for seed in bar:
            results.append(run_expert_episode(env, expert, seed, max_steps=self.config.max_steps,
                                              on_step=capture if (want_frames and not results) else None))
            bar.set_postfix(success=f"{sum(x.success for x in results)}/{len(results)}")
            if len(results) == 1:
                self._write_media(frames)
        wall_s = time.perf_counter() - t0
        summary = SuccessSummary.of([r.seed for r in results], [r.success for r in results],
                                    [r.duration_s for r in results])
        return ExpertReport(results, summary, wall_s, want_frames, len(frames))

    def _write_media(self, frames: list[np.ndarray]) -> None:
        if frames and self.strip:
            write_strip(evenly_spaced(frames, self.strip_frames), self.strip)
        if frames and self.video:
            write_video(frames, self.video, fps=CONTROL_RATE_HZ / FRAME_EVERY)


#: The output options of ``fdl_sim evaluate`` (:func:`fdl_robot.outputs.check_args`).
EXPERT_OUTPUTS = {"--strip": IMAGE, "--video": VIDEO, "--json": JSON}


def add_expert_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``fdl_sim evaluate`` (check the outputs, EXPERT_OUTPUTS, after parsing)."""
    add_arguments(p, EXPERT_EVAL, "steps", seed0_help="first seed (held out from the default demo seeds)")
    p.add_argument("--strip", type=Path, default=None, help="PNG strip of the first episode's camera view")
    p.add_argument("--strip-frames", type=int, default=8)
    p.add_argument("--video", type=Path, default=None,
                   help=f"MP4 of the first episode ({CONTROL_RATE_HZ / FRAME_EVERY:g} fps)")
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--json", type=Path, default=None, help="write the per-seed results here")
    p.add_argument("--no-align-yaw", action="store_true", help="grasp at the arm's natural yaw, ignoring the cube's")
    p.add_argument("--camera", choices=("scene", "wrist"), default="scene", help="the camera of the strip / video")
    p.add_argument("--depth-model", choices=("ideal", "realsense"), default=None,
                   help="also show that camera's depth image (through this depth model) under each frame")
    p.add_argument("--perturbation", choices=PERTURBATIONS, default="none",
                   help="scene perturbation of every episode (sim.perturbations)")
    return p


def evaluate_from_arguments(args: argparse.Namespace) -> int:
    """Run ``fdl_sim evaluate`` (outputs already checked); exit code 0 if every episode succeeded."""
    from fdl_robot.sim.expert import ExpertConfig, ScriptedExpert

    config = from_arguments(args, EXPERT_EVAL)
    from fdl_robot.sim.scene import CAMERAS

    with ExpertEvaluator(config, args.width, args.height, args.strip, args.strip_frames, args.video,
                         camera=CAMERAS[args.camera], depth_model=args.depth_model,
                         perturbation=args.perturbation) as evaluator:
        report = evaluator.run(ScriptedExpert(evaluator.env.model, ExpertConfig(align_yaw=not args.no_align_yaw)))
    print("\n".join(report.lines()))
    if args.json:
        write_json(args.json, [asdict(r) for r in report.results], "--json", indent=1)
        print(f"per-seed results: {args.json}")
    if report.frames and args.strip:
        print(f"image strip of seed {config.seed0}: {args.strip}")
    if report.frames and args.video:
        print(f"video of seed {config.seed0}: {args.video}")
    return 0 if report.summary.successes == report.summary.episodes else 1


@exit_on_error
def main(argv: Sequence[str] | None = None) -> int:
    parser = add_expert_arguments(argparse.ArgumentParser(prog="fdl_sim evaluate",
                                                          description="Evaluate the scripted expert.",
                                                          formatter_class=HelpFormatter))
    args = parser.parse_args(argv)
    check_args(parser, args, EXPERT_OUTPUTS)
    return evaluate_from_arguments(args)

"""One synthetic RGB-D scene through the perception pipeline, stage by stage (no simulator).

    fdl-robot-pipeline-demo [--frames 5] [--out outputs/pipeline_demo.png]

A red and a blue 4 cm cube lie on a table seen by a camera 0.6 m above it. For each of a
few frames (the red cube slides along +x at 3 cm/s, stamps at 15 Hz) the demo renders the
RGB-D frame, detects the cubes (the colour-blob backend: these flat renders are not what the
shipped YOLO was trained on), lifts each box with the aligned depth to the camera optical
frame and on to base_link, and feeds the tracker; then the scripted policy turns the joint
state and the tracked cube into a chunk of joint targets. It prints every stage and the
error against the ground truth, and saves the annotated image. It is library code only:
the ROS graph runs the same calls inside nodes, and ``fdl-robot-closed-loop`` runs the whole
pick-and-place (MuJoCo cell, YOLO, ACT) through it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fdl_robot.cli_format import HelpFormatter
from fdl_robot.core.camera import PinholeCamera
from fdl_robot.core.geometry import Transform
from fdl_robot.core.tracking import MultiObjectTracker
from fdl_robot.outputs import IMAGE, check_args, exit_on_error, write_image
from fdl_robot.perception.color_detector import ColorDetector
from fdl_robot.perception.lifting import lift_detections
from fdl_robot.perception.synthetic import Cube, render_cubes

CAMERA = PinholeCamera(fx=600.0, fy=600.0, cx=319.5, cy=239.5, width=640, height=480)
T_BASE_CAM = Transform.from_rpy(np.pi, 0.0, -np.pi / 2, t=(0.5, 0.0, 0.6))


def _fmt(v) -> str:
    return "[" + ", ".join(f"{x:+.4f}" for x in np.asarray(v, float).ravel()) + "]"


def run(frames: int = 5, out: Path | None = None) -> dict:
    detector, tracker = ColorDetector(), MultiObjectTracker()
    errors_mm = []
    print(f"camera K =\n{CAMERA.K}\nT_base_cam (optical -> base_link) =\n{np.round(T_BASE_CAM.as_matrix(), 4)}\n")
    for k in range(frames):
        stamp_s = 100.0 + k / 15.0
        cubes = [Cube("red_cube", (0.45 + 0.03 * (stamp_s - 100.0), 0.05, 0.02)),
                 Cube("blue_cube", (0.55, -0.08, 0.02))]
        rgb, depth_mm, true_boxes = render_cubes(CAMERA, T_BASE_CAM, cubes, table_depth_m=0.6)
        det = detector.detect(rgb)
        objects = lift_detections(det.boxes_xyxy, depth_mm.astype(np.float32) / 1000.0, CAMERA, T_BASE_CAM)
        names = [det.class_names[i] for i in objects.index]
        tracks = tracker.update(objects.p_base, stamp_s, labels=names,
                                covariances=objects.covariance_base)
        print(f"--- frame {k}  stamp {stamp_s:.3f} s")
        for i, name in enumerate(det.class_names):
            print(f"  detection  {name:10s} score {det.scores[i]:.2f} box {_fmt(det.boxes_xyxy[i])}")
        for row, name in enumerate(names):
            truth = next(c.p_base for c in cubes if c.name == name)
            err = 1000 * np.linalg.norm(objects.p_base[row] - truth)
            errors_mm.append(err)
            print(f"  lifted     {name:10s} depth {objects.depth_m[row]:.3f} m  p_base {_fmt(objects.p_base[row])}"
                  f"  truth {_fmt(truth)}  error {err:.1f} mm")
        for t in tracks:
            print(f"  track {t.id:2d} {t.label:10s} {t.state:9s} hits {t.hits}  p {_fmt(t.position)}"
                  f"  v {_fmt(t.velocity)} m/s")
    red = [t for t in tracker.confirmed_tracks() if t.label == "red_cube"]
    summary = {"frames": frames, "median_error_mm": float(np.median(errors_mm)),
               "max_error_mm": float(np.max(errors_mm)), "confirmed_tracks": len(tracker.confirmed_tracks())}
    if red:
        print(f"\nred cube track velocity {_fmt(red[0].velocity)} m/s (truth [+0.0300, +0.0000, +0.0000])")
    _policy_stage(red[0].position if red else None)
    if out is not None:
        from fdl_robot.perception.annotate import draw_detections

        write_image(out, np.ascontiguousarray(draw_detections(rgb, det)[..., ::-1]), "annotated frame")
        print(f"\nannotated last frame: {out}")
    print(f"\nlifting error vs ground truth: median {summary['median_error_mm']:.1f} mm, "
          f"max {summary['max_error_mm']:.1f} mm over {len(errors_mm)} detections")
    return summary


def _policy_stage(p_target_base) -> None:
    from fdl_robot.core.kinematics import HOME_QPOS_RAD
    from fdl_robot.policy.inputs import PolicyInputsConfig
    from fdl_robot.policy.interface import PolicyObservation
    from fdl_robot.policy.scripted import ScriptedPolicy

    policy = ScriptedPolicy()
    obs = PolicyObservation(qpos_rad=np.asarray(HOME_QPOS_RAD), gripper=0.0, target_p_base_m=p_target_base,
                            bin_p_base_m=np.array(PolicyInputsConfig().bin_position), stamp_s=0.0)
    chunk = policy.predict_chunk(obs)
    print(f"\nscripted policy ({policy.mode}): chunk of {chunk.shape[0]} joint targets (6 joints rad + gripper);"
          f"\n  first {_fmt(chunk[0])}\n  last  {_fmt(chunk[-1])}")


@exit_on_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("outputs/pipeline_demo.png"))
    args = parser.parse_args(argv)
    check_args(parser, args, {"--out": IMAGE})
    run(args.frames, args.out)
    print("\nThe whole pick-and-place from pixels (MuJoCo cell, YOLO, ACT, through the ROS graph): "
          "fdl-robot-closed-loop")


if __name__ == "__main__":
    main()

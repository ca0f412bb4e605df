"""Moving-camera accuracy: the wrist camera sweeping over a static cube, transforms three ways.

    nice -n 10 taskset -c 1 .venv/bin/python benchmarks/moving_camera.py \
        --out benchmarks/results/issue15/moving_camera          # .json, .md and .png

The simulated wrist camera ("wrist_cam", on tool0) sweeps in straight lines over a cube
resting on the table, the tool pointing down, at constant TCP speeds from 0 up to full joint
speed (the fastest joint at 180 deg/s, the UR5e's limit). Along each path the joints q(s)
come from the IK at knots 5 mm apart (a cubic spline through them), and q(t) = q(s(t)) with
s = v t: the same path at every speed. The arm is placed kinematically at each instant
(MuJoCo qpos, no dynamics), so the true camera pose of a rendered image is known exactly.

Images are taken at 30 Hz with a phase of their own (camera and joint clocks are not
synchronised); each gets the ground-truth box of the cube (segmentation render; frames where
the cube touches the image border or the robot are skipped) and its aligned depth, lifted
with :func:`fdl_robot.perception.lifting.lift_detections` under four transforms T_base_cam:

* ``truth``: the camera's true pose at the image instant (the floor: lifting's own error);
* ``ours_500hz``: :class:`~fdl_robot.perception.extrinsics.ArmCameraExtrinsics` at the image
  stamp, its joint buffer fed with joint states at 500 Hz (the simulator's physics rate, a
  UR controller's), those stamped up to the moment the frame is processed;
* ``ours_100hz``: the same with joint states at 100 Hz (a common joint_state_broadcaster
  rate): q is interpolated between samples 10 ms apart;
* ``latest``: FK of the newest 500 Hz joint state at the time the localizer processes the
  frame, image stamp + ``--latency-ms`` (40 ms): what a lookup of the latest TF does.

The error is e = || p_base_estimated - p_base_true || of the cube's centre, reported as
median and p95 per speed, with the TCP speed measured at the image instant (|J_v(q) q_dot|
of the ``tcp`` frame) and the camera's angular speed. Target for ours: median <= 5 mm and
p95 <= 15 mm at every speed. The mount T_tool0_cam is the simulator's true one (calibration
is a separate question: fdl-robot-calibrate).
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import numpy as np

from fdl_robot.outputs import FIGURE, JSON, check_args, exit_on_error, write_figure, write_json, write_text

FULL = "full"                                            # the speed at which the fastest joint reaches its limit
JOINT_SPEED_LIMIT_RAD_S = np.pi                           # UR5e: 180 deg/s on every joint
MS = 1_000_000


@dataclass(frozen=True)
class Path:
    """A straight TCP line over the cube: its joint spline q(s), s in metres along it."""

    cube_m: np.ndarray
    spline: object                  # scipy CubicSpline s -> q (6,)
    half_length_m: float            # images are taken for |s| <= this
    margin_m: float                 # the spline covers |s| <= half_length + margin
    full_speed_m_s: float           # TCP speed at which max_j |q_j'(s)| v = the joint limit


def make_path(rng, model, kin, half_length_m: float, margin_m: float, height_m: float, env, wrist, qadr) -> Path:
    """A random cube position and sweep direction; IK knots 5 mm apart along the line."""
    import mujoco
    from scipy.interpolate import CubicSpline

    cube = np.array([rng.uniform(0.38, 0.52), rng.uniform(-0.2, 0.1), 0.02])
    yaw = rng.uniform(-0.4, 0.4)
    direction_rad = rng.uniform(0, np.pi)
    d = np.array([np.cos(direction_rad), np.sin(direction_rad), 0.0])
    # centre: the TCP position whose camera axis meets the cube's top face at the cube (fixed point)
    q = kin.HOME_QPOS_RAD.copy()
    centre = cube + [0.0, 0.0, height_m]
    for _ in range(4):
        q = kin.solve_ik_pointing_down(centre, q, yaw_rad=yaw).q_rad
        env.data.qpos[qadr] = q
        mujoco.mj_forward(env.model, env.data)
        T = env.camera_extrinsics(wrist)
        o, z = T.translation, T.rotation[:, 2]
        hit = o + (cube[2] + 0.02 - o[2]) / z[2] * z
        centre[:2] += (cube - hit)[:2]
    s = np.arange(-(half_length_m + margin_m), half_length_m + margin_m + 1e-9, 0.005)
    qs, q_mid = np.empty((len(s), 6)), q
    for i0, step in ((len(s) // 2, 1), (len(s) // 2 - 1, -1)):      # outwards from the middle, warm starts
        q = q_mid
        for i in range(i0, len(s) if step > 0 else -1, step):
            res = kin.solve_ik_pointing_down(centre + s[i] * d, q, yaw_rad=yaw, position_tolerance_m=1e-6,
                                             orientation_tolerance_rad=1e-5)
            if not res.converged:
                raise RuntimeError(f"IK did not converge along the path at s = {s[i]:.3f} m")
            qs[i] = q = res.q_rad
    spline = CubicSpline(s, qs)
    inner = np.linspace(-half_length_m, half_length_m, 200)
    full = JOINT_SPEED_LIMIT_RAD_S / np.max(np.abs(spline(inner, 1)))
    return Path(cube, spline, half_length_m, margin_m, float(full))


def draw_path(*args, attempts: int = 20) -> Path:
    """:func:`make_path`, drawing again when the IK cannot follow a path (joint limits)."""
    for _ in range(attempts):
        try:
            return make_path(*args)
        except RuntimeError as exc:
            print(f"  {exc}; drawing another path")
    raise SystemExit(f"no reachable sweep path in {attempts} draws")


def cube_box(seg: np.ndarray, label: int, robot_label: int, min_pixels: int) -> np.ndarray | None:
    """The cube's XYXY box (edge coordinates) from the segmentation, or None when it is too
    small, touches the image border, or touches the robot (occluded)."""
    ys, xs = np.nonzero(seg == label)
    if len(xs) < min_pixels:
        return None
    h, w = seg.shape
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    if x0 == 0 or y0 == 0 or x1 == w - 1 or y1 == h - 1:
        return None
    around = seg[max(y0 - 2, 0):y1 + 3, max(x0 - 2, 0):x1 + 3]
    if np.any(around == robot_label):
        return None
    return np.array([x0, y0, x1 + 1.0, y1 + 1.0])


class JointStream:
    """Joint states of a motion q(t), at ``rate_hz`` with a random phase, fed on demand into an
    :class:`~fdl_robot.perception.extrinsics.ArmCameraExtrinsics` (what the localizer holds)."""

    def __init__(self, q_at, rate_hz: float, t0_ns: int, t1_ns: int, rng, fk, names, T_mount_cam):
        from fdl_robot.core.joint_buffer import JointBuffer
        from fdl_robot.perception.extrinsics import ArmCameraExtrinsics

        dt = round(1e9 / rate_hz)
        self.q_at, self.names = q_at, names
        self.stamps = np.arange(t0_ns + int(rng.integers(0, dt)), t1_ns + 2 * dt, dt)
        self.source = ArmCameraExtrinsics(fk, JointBuffer(names, history_s=2.0), T_mount_cam)
        self.fed = 0

    def feed_until(self, t_ns: int) -> int:
        """Add the joint states stamped up to ``t_ns``; the stamp of the newest."""
        while self.fed < len(self.stamps) and self.stamps[self.fed] <= t_ns:
            t = int(self.stamps[self.fed])
            self.source.add_joint_state(self.names, self.q_at(t), t)
            self.fed += 1
        return int(self.stamps[self.fed - 1])


@dataclass
class Bench:
    """The scene and the settings every sweep shares."""

    env: object
    model: object
    qadr: np.ndarray
    wrist: str
    camera: object
    T_mount_cam: object
    lifting: object
    args: argparse.Namespace
    rng: np.random.Generator
    frames: int = 0

    def fk(self, q):
        return self.model.frame_pose(q, "tool0")

    def image(self, q):
        """(cube box or None, depth) of the wrist camera with the arm at q."""
        import mujoco

        env, cam = self.env, self.camera
        env.data.qpos[self.qadr] = q
        self.frames += 1                        # a physics step of its own: the depth model's noise seed
        env.data.time = self.frames * env.physics_dt_s
        mujoco.mj_forward(env.model, env.data)
        seg = env.render_segmentation(self.wrist, cam.width, cam.height)
        labels = env.segmentation_labels
        box = cube_box(seg, labels["red_cube"], labels["robot"], self.args.min_pixels)
        return box, (None if box is None else env.render_depth(self.wrist, cam.width, cam.height))

    def sweep(self, q_at, qdot_at, stamps_ns, t_end_ns: int) -> list[dict]:
        """Rows (one per usable image at ``stamps_ns``) of the motion q_at(t), t in [0, t_end]."""
        from fdl_robot.core.geometry import Transform
        from fdl_robot.perception.lifting import lift_detections

        args, names = self.args, self.model.joint_names
        latency_ns = round(args.latency_ms * MS)
        lead_ns = 20 * MS
        streams = {f"ours_{r:g}hz": JointStream(q_at, r, -lead_ns, t_end_ns + latency_ns, self.rng, self.fk, names,
                                                self.T_mount_cam) for r in args.joint_rates}
        fastest = streams[f"ours_{max(args.joint_rates):g}hz"]
        rows = []
        for t_img in (int(t) for t in stamps_ns):
            q, qdot = q_at(t_img), qdot_at(t_img)
            box, depth = self.image(q)
            if box is None:
                continue
            T = {"truth": self.env.camera_extrinsics(self.wrist)}
            t_process = t_img + latency_ns                 # when the localizer gets the frame
            for key, stream in streams.items():
                stream.feed_until(t_process)
                T[key] = stream.source.lookup("base_link", self.wrist, t_img + round(args.clock_offset_ms * MS))
            T["latest"] = Transform.from_matrix(self.fk(q_at(fastest.feed_until(t_process)))) @ self.T_mount_cam
            truth = self.env.object_pose("red_cube").position_m
            J = self.model.jacobian(q, "tcp")
            row = {"tcp_speed_m_s": float(np.linalg.norm(J[:3] @ qdot)),
                   "cam_angular_speed_rad_s": float(np.linalg.norm(J[3:] @ qdot)),
                   "max_joint_speed_rad_s": float(np.max(np.abs(qdot)))}
            lifted = {key: lift_detections(box[None], depth, self.camera, T_key, self.lifting)
                      for key, T_key in T.items()}
            if any(len(obj.index) != 1 for obj in lifted.values()):
                continue
            for key, obj in lifted.items():
                row[f"error_{key}_m"] = float(np.linalg.norm(obj.p_base[0] - truth))
            row["depth_m"] = float(lifted["truth"].depth_m[0])
            rows.append(row)
        return rows

    def run(self, path: Path, speed_m_s: float) -> list[dict]:
        """A sweep of ``path`` at ``speed_m_s``: images at args.fps; at speed 0, the arm at rest
        at frames_per_sweep points along the path (a sweep of one image each)."""
        args, half = self.args, path.half_length_m
        if speed_m_s == 0:
            rows = []
            for s in np.linspace(-half, half, args.frames_per_sweep):
                rows += self.sweep(lambda t, s=s: path.spline(s), lambda t: np.zeros(6), [0], 0)
            return rows
        t_end_ns = round(2 * half / speed_m_s * 1e9)
        period = round(1e9 / args.fps)
        stamps = np.arange(self.rng.integers(0, period), t_end_ns, period)
        if len(stamps) > args.frames_per_sweep:
            stamps = stamps[np.linspace(0, len(stamps) - 1, args.frames_per_sweep).round().astype(int)]
        return self.sweep(lambda t: path.spline(-half + speed_m_s * t * 1e-9),
                          lambda t: path.spline(-half + speed_m_s * t * 1e-9, 1) * speed_m_s, stamps, t_end_ns)


def methods(args) -> list[str]:
    """The transforms compared: truth, ours at each joint-state rate, latest."""
    return ["truth", *(f"ours_{r:g}hz" for r in args.joint_rates), "latest"]


def summarise(rows: list[dict], speeds: list[str], keys: list[str]) -> list[dict]:
    out = []
    for label in speeds:
        sel = [r for r in rows if r["speed_label"] == label]
        if not sel:
            continue
        entry = {"speed": label, "n": len(sel),
                 "tcp_speed_m_s": float(np.median([r["tcp_speed_m_s"] for r in sel])),
                 "tcp_speed_max_m_s": float(np.max([r["tcp_speed_m_s"] for r in sel])),
                 "cam_angular_speed_rad_s": float(np.median([r["cam_angular_speed_rad_s"] for r in sel])),
                 "max_joint_speed_rad_s": float(np.max([r["max_joint_speed_rad_s"] for r in sel]))}
        for key in keys:
            e = np.array([r[f"error_{key}_m"] for r in sel])
            entry[f"{key}_median_mm"] = float(np.median(e) * 1e3)
            entry[f"{key}_p95_mm"] = float(np.percentile(e, 95) * 1e3)
        out.append(entry)
    return out


def _title(key: str) -> str:
    return {"truth": "true pose", "latest": "latest joint state"}.get(key, f"ours, {key[5:-2]} Hz joints")


def markdown(summary: list[dict], args) -> str:
    keys = methods(args)
    offset = f", image stamps {args.clock_offset_ms:g} ms off" if args.clock_offset_ms else ""
    lines = [f"Wrist camera ({args.width}x{args.image_height}, depth model {args.depth_model}) sweeping over a "
             f"static cube; error of the cube centre in base_link, mm (median / p95); "
             f"ours = FK at the image stamp{offset}; latest = the newest {max(args.joint_rates):g} Hz joint state "
             f"at image stamp + {args.latency_ms:g} ms.", "",
             "| speed | TCP speed m/s (median) | max joint speed rad/s | frames | "
             + " | ".join(map(_title, keys)) + " |",
             "|---" * (4 + len(keys)) + "|"]
    for s in summary:
        cells = " | ".join(f"{s[f'{k}_median_mm']:.1f} / {s[f'{k}_p95_mm']:.1f}" for k in keys)
        lines.append(f"| {s['speed']} | {s['tcp_speed_m_s']:.2f} | {s['max_joint_speed_rad_s']:.2f} | {s['n']} | "
                     f"{cells} |")
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], keys: list[str]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 6))
    v = [s["tcp_speed_m_s"] for s in summary]
    ours = iter(["tab:green", "tab:blue", "tab:cyan", "tab:olive"])
    styles = {k: ("k", "true pose (floor)") if k == "truth" else ("tab:red", "latest joint state (+ latency)")
              if k == "latest" else (next(ours), f"ours: FK at the stamp, {k[5:-2]} Hz joints") for k in keys}
    for key, (color, label) in styles.items():
        ax.plot(v, [s[f"{key}_median_mm"] for s in summary], "-o", color=color, label=f"{label}, median")
        ax.plot(v, [s[f"{key}_p95_mm"] for s in summary], "--", color=color, alpha=0.7, label=f"{label}, p95")
    ax.axhline(5, color="grey", lw=0.8, ls=":")
    ax.axhline(15, color="grey", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("TCP speed at the image instant, m/s (median of the sweep)")
    ax.set_ylabel("3D error of the cube centre, mm")
    ax.set_title("Wrist camera over a static cube: the transform at the image stamp vs the latest", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.13))
    fig.tight_layout()
    return fig


@exit_on_error
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--paths", type=int, default=24, help="random sweep paths (cube position, direction)")
    p.add_argument("--speeds", default="0,0.05,0.1,0.25,0.5,0.75,1.0,full",
                   help="TCP speeds in m/s, comma separated; 'full' = the fastest joint at 180 deg/s")
    p.add_argument("--frames-per-sweep", type=int, default=20)
    p.add_argument("--fps", type=float, default=30.0, help="camera frame rate")
    p.add_argument("--latency-ms", type=float, default=40.0, help="image stamp -> processing, for 'latest'")
    p.add_argument("--joint-rates", default="500,100,50",
                   help="joint-state rates of 'ours', Hz (500: a UR controller; 50: sim_node's control steps)")
    p.add_argument("--clock-offset-ms", type=float, default=0.0,
                   help="error of the image stamps against the joint-state clock (0: synchronised clocks)")
    p.add_argument("--height", type=float, default=0.25, help="TCP height above the cube centre, m")
    p.add_argument("--half-length", type=float, default=0.1, help="half length of the imaged sweep, m")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--image-height", type=int, default=480)
    p.add_argument("--min-pixels", type=int, default=200, help="skip frames where the cube covers fewer pixels")
    p.add_argument("--depth-model", default="realsense", choices=["realsense", "ideal"],
                   help="the simulator's depth: a D405's noise, holes and 0.1 mm units, or the exact render")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="", help="write <out>.json, <out>.md and <out>.png")
    args = p.parse_args()
    args.joint_rates = [float(r) for r in args.joint_rates.split(",")]
    if args.out:
        check_args(p, argparse.Namespace(out_json=args.out + ".json", out_png=args.out + ".png"),
                   {"--out-json": JSON, "--out-png": FIGURE})
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import mujoco

    from fdl_robot.core import kinematics as kin
    from fdl_robot.core.geometry import Transform
    from fdl_robot.core.robot_model import ur5e_gripper
    from fdl_robot.perception.lifting import LiftingConfig
    from fdl_robot.sim import scene
    from fdl_robot.sim.env import PickPlaceConfig, PickPlaceEnv

    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    model = ur5e_gripper()
    wrist = scene.WRIST_CAMERA
    env = PickPlaceEnv(PickPlaceConfig(preload_torchvision=False, shadows=False, image_width=args.width,
                                       image_height=args.image_height, depth_model=args.depth_model))
    env.reset(seed=args.seed)
    for i, name in enumerate(env.object_names):                      # only the cube under the camera
        if name.startswith("distractor"):
            env.set_object_pose(name, [-0.6 - 0.1 * i, 0.8, 0.02])
    qadr = np.array([env.model.jnt_qposadr[mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_JOINT, n)]
                     for n in scene.ARM_JOINT_NAMES])
    assert tuple(scene.ARM_JOINT_NAMES) == model.joint_names
    camera = env.camera_intrinsics(wrist, args.width, args.image_height)
    T_mount_cam = env.T_flange_cam                                   # the true mount (jittered per episode)
    env.data.qpos[qadr] = kin.HOME_QPOS_RAD
    mujoco.mj_forward(env.model, env.data)
    T_check = Transform.from_matrix(model.frame_pose(kin.HOME_QPOS_RAD, "tool0")) @ T_mount_cam
    assert np.allclose(T_check.as_matrix(), env.camera_extrinsics(wrist).as_matrix(), atol=1e-6)

    bench = Bench(env, model, qadr, wrist, camera, T_mount_cam, LiftingConfig(min_depth_m=0.05), args, rng)
    speeds = [s.strip() for s in args.speeds.split(",")]
    rows = []
    for k in range(args.paths):
        margin = 0.2                                   # path beyond the imaged part: latency at speed
        path = draw_path(rng, model, kin, args.half_length, margin, args.height, env, wrist, qadr)
        env.set_object_pose("red_cube", path.cube_m)
        for label in speeds:
            v = path.full_speed_m_s if label == FULL else float(label)
            if v > path.full_speed_m_s * (1 + 1e-9):
                print(f"  path {k + 1}: {v:g} m/s would take a joint past 180 deg/s (full speed "
                      f"{path.full_speed_m_s:.2f} m/s): skipped")
                continue
            if v * (args.latency_ms * 1e-3 + 0.02) > margin:
                raise SystemExit(f"speed {v:.2f} m/s runs off the path's margin; lower --latency-ms")
            sweep = bench.run(path, v)
            for r in sweep:
                r.update(speed_label=label, path=k)
            rows += sweep
        print(f"path {k + 1}/{args.paths}: cube {np.round(path.cube_m, 3)}, full joint speed at "
              f"{path.full_speed_m_s:.2f} m/s TCP, {len(rows)} frames so far ({time.time() - t0:.0f} s)", flush=True)
    env.close()
    keys = methods(args)
    summary = summarise(rows, speeds, keys)
    table = markdown(summary, args)
    print(table)
    target = all(s[f"{k}_median_mm"] <= 5 and s[f"{k}_p95_mm"] <= 15 for s in summary for k in keys
                 if k.startswith("ours"))
    print(f"target (ours: median <= 5 mm, p95 <= 15 mm at every speed): {'met' if target else 'NOT met'}")
    if args.out:
        write_json(args.out + ".json", {"summary": summary, "rows": rows, "target_met": target,
                                        "args": vars(args), "camera": {"fx": camera.fx, "fy": camera.fy,
                                                                       "width": camera.width,
                                                                       "height": camera.height},
                                        "T_tool0_cam": {"xyz": T_mount_cam.translation.tolist(),
                                                        "quat_xyzw": T_mount_cam.as_quaternion().tolist()},
                                        "wall_s": time.time() - t0})
        write_text(args.out + ".md", table)
        write_figure(args.out + ".png", plot(summary, keys), dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Two cameras into one tracker: track continuity without and with the cameras' views.

    .venv/bin/python benchmarks/two_camera_tracking.py            # prints the table
    .venv/bin/python benchmarks/two_camera_tracking.py --json benchmarks/results/issue15/two_camera_tracking.json

A synthetic table (objects in base_link, z = 2 cm) seen by two cameras at 15 Hz each, whose
detections feed ONE :class:`~fdl_robot.core.tracking.MultiObjectTracker` with its defaults
(tracker_node's), in stamp order, as two localizer_nodes feed one tracker_node:

* ``disjoint``: two fixed cameras 0.45 m above the table, footprints 4 cm apart, three
  objects under each.
* ``overlap``: two fixed cameras whose footprints share a 22 cm strip; two of the six
  objects are seen by both.
* ``handoff``: two fixed cameras with a 14 cm blind strip between them; three objects slide
  at 5 cm/s from A's footprint across the strip (about 3 s unseen, longer than
  ``max_age_s``) into B's and stop there.
* ``scene+wrist``: a fixed scene camera over the table and a D405-like wrist camera
  (848x480, 87 x 58 deg, depth 0.07-0.5 m) 25 cm above it, sweeping the table at up to
  0.4 m/s; four objects are under the scene camera, two only the sweeping wrist camera sees.

Stamps: ``sync`` (both cameras at k/15 s, A's message first) or ``async`` (B offset by a
seeded 0.2-0.8 frame, 2 ms jitter on each stamp). Detection model per camera and frame: an
object (a 4 cm cube, radius r = 2 cm) whose image (centre +- f r / z pixels) lies inside the
image, depth in range, is detected with p = 0.9; one whose centre is inside but whose image is
cut by the border with p = 0.4; pixel noise 1.5 px and depth noise
0.005 z^2 m (the localizer's model, whose covariance the tracker gets), a per-camera
calibration offset of 3 mm (seeded direction), and clutter on the table (Poisson, 0.05 per
frame). Occlusion is not simulated.

Tracker modes: ``blind`` = ``observable=None`` (before views: every update may miss every
track); ``view-bare`` = ``observable=CameraView.sees`` with no margin (the image itself);
``view`` = the same with tracker_node's defaults ``view_margin_px`` and
``view_object_radius_m`` (the image shrunk by the margin and the object's image radius).
After every update: hypotheses = CONFIRMED and LOST tracks (what tracker_node
publishes); CLEAR-MOT against the true positions within 5 cm (core.mot_metrics: ID switches,
MOTA, IDF1); **coverage** = the fraction of updates at which an object has a CONFIRMED track
within 5 cm, counted from the object's first detection on (mean over objects, and the worst
object); **usable** = the same for a track the policy would take as its target (CONFIRMED, or
LOST for at most ``target_max_lost_s``, policy.inputs); ``ids`` = tracks created per run.
Figures are means over ``--seeds`` seeds.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from fdl_robot.core.assignment import hungarian
from fdl_robot.core.camera import PinholeCamera
from fdl_robot.core.geometry import Transform
from fdl_robot.core.mot_metrics import MOTAccumulator, idf1
from fdl_robot.core.tracking import MultiObjectTracker, TrackState
from fdl_robot.core.visibility import CameraView
from fdl_robot.outputs import JSON, check_args, exit_on_error, write_json
from fdl_robot.policy.inputs import PolicyInputsConfig

HZ = 15.0
TABLE_Z_M = 0.02
DETECT_P, EDGE_DETECT_P, OBJECT_RADIUS_M = 0.9, 0.4, 0.02
PIXEL_SIGMA_PX, DEPTH_SIGMA_M = 1.5, 0.005          # depth sigma at 1 m, grows with z^2
BIAS_M, CLUTTER_PER_FRAME, JITTER_S = 0.003, 0.05, 0.002
MATCH_M = 0.05


@dataclass(frozen=True)
class Sensor:
    """One camera: intrinsics, depth range and its pose T_base_cam(t)."""

    name: str
    camera: PinholeCamera                       # with width, height
    min_depth_m: float
    max_depth_m: float
    pose: Callable[[float], Transform]          # t (s) -> T_base_cam

    def view(self, t_s: float) -> CameraView:
        return CameraView(self.camera, self.pose(t_s), self.min_depth_m, self.max_depth_m, self.name)


@dataclass(frozen=True)
class Scenario:
    name: str
    sensors: tuple[Sensor, Sensor]
    objects: Callable[[float], np.ndarray]       # t (s) -> (K, 3) true positions in base_link


def _looking_down(x_m: float, y_m: float, height_m: float) -> Transform:
    """T_base_cam of a camera above (x, y) looking straight down (optical x along base -y)."""
    return Transform.from_rpy(np.pi, 0.0, -np.pi / 2, t=(x_m, y_m, height_m))


def scenarios() -> list[Scenario]:
    fixed = PinholeCamera(600.0, 600.0, 319.5, 239.5, 640, 480)
    d405 = PinholeCamera(447.0, 433.0, 423.5, 239.5, 848, 480)       # 87 x 58 deg

    def still(*pose):
        return lambda t: _looking_down(*pose)

    def static(points):
        p = np.array([[x, y, TABLE_Z_M] for x, y in points])
        return lambda t: p

    def sliding(t):
        x = np.array([0.45, 0.55, 0.65])
        y = np.maximum(np.array([0.40, 0.35, 0.30]) - 0.05 * t, -0.35)
        return np.column_stack([x, y, np.full(3, TABLE_Z_M)])

    def wrist(t):
        return _looking_down(0.55 + 0.2 * np.sin(2 * np.pi * t / 9.0), 0.4 * np.sin(2 * np.pi * t / 6.0), 0.25)

    return [
        Scenario("disjoint", (Sensor("A", fixed, 0.1, 2.0, still(0.55, 0.25, 0.45)),
                              Sensor("B", fixed, 0.1, 2.0, still(0.55, -0.25, 0.45))),
                 static([(0.45, 0.15), (0.55, 0.35), (0.65, 0.2), (0.45, -0.15), (0.55, -0.35), (0.65, -0.2)])),
        Scenario("overlap", (Sensor("A", fixed, 0.1, 2.0, still(0.55, 0.12, 0.45)),
                             Sensor("B", fixed, 0.1, 2.0, still(0.55, -0.12, 0.45))),
                 static([(0.45, 0.3), (0.6, 0.2), (0.5, 0.02), (0.62, -0.05), (0.45, -0.2), (0.6, -0.3)])),
        Scenario("handoff", (Sensor("A", fixed, 0.1, 2.0, still(0.55, 0.3, 0.45)),
                             Sensor("B", fixed, 0.1, 2.0, still(0.55, -0.3, 0.45))), sliding),
        Scenario("scene+wrist", (Sensor("scene", fixed, 0.1, 2.0, still(0.55, 0.0, 0.7)),
                                 Sensor("wrist", d405, 0.07, 0.5, wrist)),
                 static([(0.45, 0.2), (0.6, -0.1), (0.7, 0.25), (0.4, -0.25), (0.5, 0.45), (0.65, -0.45)])),
    ]


def detect(view: CameraView, p_true: np.ndarray, bias_m: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame of a camera: detections (M, 3) in base_link, their covariances (M, 3, 3) and
    the index of the true object of each (-1 = clutter)."""
    cam, T = view.camera, view.T_base_cam
    p_cam = T.inverse().apply(p_true)
    z = p_cam[:, 2]
    in_depth = (z >= view.min_depth_m) & (z <= view.max_depth_m)
    zs = np.where(in_depth, z, 1.0)
    u, v = cam.fx * p_cam[:, 0] / zs + cam.cx, cam.fy * p_cam[:, 1] / zs + cam.cy
    inside_u = np.minimum(u + 0.5, cam.width - 0.5 - u)           # pixels inside the border
    inside_v = np.minimum(v + 0.5, cam.height - 0.5 - v)
    whole = (inside_u >= cam.fx * OBJECT_RADIUS_M / zs) & (inside_v >= cam.fy * OBJECT_RADIUS_M / zs)
    p_detect = np.where(~in_depth | (inside_u < 0) | (inside_v < 0), 0.0,
                        np.where(whole, DETECT_P, EDGE_DETECT_P))
    hit = np.flatnonzero(rng.random(len(p_true)) < p_detect)
    uvz = np.column_stack([u[hit], v[hit], z[hit]])
    n_clutter = rng.poisson(CLUTTER_PER_FRAME)
    if n_clutter:                                  # random pixels, on the table plane
        px = rng.uniform([0, 0], [cam.width, cam.height], (n_clutter, 2))
        ray = T.rotate(np.column_stack([(px - [cam.cx, cam.cy]) / [cam.fx, cam.fy], np.ones(n_clutter)]))
        s = (TABLE_Z_M - T.translation[2]) / ray[:, 2]
        zc = T.inverse().apply(T.translation + s[:, None] * ray)[:, 2]
        uvz = np.vstack([uvz, np.column_stack([px, zc])])
    sigma_z = DEPTH_SIGMA_M * uvz[:, 2] ** 2
    noisy = uvz + rng.normal(size=uvz.shape) * np.column_stack([np.full((len(uvz), 2), PIXEL_SIGMA_PX), sigma_z])
    uu, vv, zz = noisy.T
    q_cam = np.column_stack([(uu - cam.cx) * zz / cam.fx, (vv - cam.cy) * zz / cam.fy, zz])
    J = np.zeros((len(uvz), 3, 3))                 # d p_cam / d(u, v, z), as perception.lifting
    J[:, 0, 0], J[:, 0, 2] = zz / cam.fx, (uu - cam.cx) / cam.fx
    J[:, 1, 1], J[:, 1, 2] = zz / cam.fy, (vv - cam.cy) / cam.fy
    J[:, 2, 2] = 1.0
    noise = np.zeros((len(uvz), 3, 3))
    noise[:, 0, 0] = noise[:, 1, 1] = PIXEL_SIGMA_PX ** 2
    noise[:, 2, 2] = sigma_z ** 2
    R = T.rotation
    cov = R @ (J @ noise @ J.transpose(0, 2, 1)) @ R.T
    truth = np.r_[hit, np.full(n_clutter, -1)]
    return T.apply(q_cam) + bias_m, cov, truth


def _stamps(n_frames: int, synchronised: bool, rng) -> list[tuple[float, int]]:
    """(stamp s, sensor index) of both cameras' frames, in stamp order (A first at equal stamps)."""
    k = np.arange(n_frames) / HZ
    if synchronised:
        a, b = k, k
    else:
        a = k + rng.normal(0.0, JITTER_S, n_frames)
        b = k + rng.uniform(0.2, 0.8) / HZ + rng.normal(0.0, JITTER_S, n_frames)
    events = [(float(t), 0) for t in a] + [(float(t), 1) for t in b]
    return sorted(events, key=lambda e: (e[0], e[1]))


def run(scenario: Scenario, synchronised: bool, view_margin: tuple[float, float] | None, seed: int,
        duration_s: float) -> dict:
    """One run: the continuity figures of one scenario, stamp mode, tracker mode and seed.
    ``view_margin``: None (blind) or the (margin_px, radius_m) of the view predicate."""
    max_lost_s = PolicyInputsConfig.target_max_lost_s

    rng = np.random.default_rng(seed)
    biases = [BIAS_M * b / np.linalg.norm(b) for b in rng.normal(size=(2, 3))]
    events = _stamps(int(duration_s * HZ), synchronised, rng)
    tracker = MultiObjectTracker()
    acc, frames = MOTAccumulator(MATCH_M), []
    k_objects = len(scenario.objects(0.0))
    first_seen = np.full(k_objects, np.inf)
    covered = np.zeros(k_objects)
    usable = np.zeros(k_objects)
    counted = np.zeros(k_objects)
    last_id = 0
    for t, i in events:
        sensor = scenario.sensors[i]
        view = sensor.view(t)
        p_true = scenario.objects(t)
        z, cov, truth = detect(view, p_true, biases[i], rng)
        first_seen[truth[truth >= 0]] = np.minimum(first_seen[truth[truth >= 0]], t)
        observable = None if view_margin is None else partial(view.sees, margin_px=view_margin[0],
                                                                radius_m=view_margin[1])
        tracks = tracker.update(z, t, covariances=cov, observable=observable)
        last_id = max([last_id] + [tr.id for tr in tracks])      # births are in the returned list
        gt = np.flatnonzero(first_seen <= t)
        hyp = [tr for tr in tracks if tr.state != TrackState.TENTATIVE]
        hyp_ids = np.array([tr.id for tr in hyp], dtype=int)
        hyp_p = np.array([tr.position for tr in hyp]).reshape(-1, 3)
        acc.update(gt, p_true[gt], hyp_ids, hyp_p)
        frames.append((gt, p_true[gt], hyp_ids, hyp_p))
        confirmed = np.array([tr.state == TrackState.CONFIRMED for tr in hyp], dtype=bool)
        eligible = confirmed | np.array([tr.time_since_update_s <= max_lost_s for tr in hyp], dtype=bool)
        d = np.linalg.norm(p_true[gt][:, None] - hyp_p[None], axis=-1)
        counted[gt] += 1
        for tally, keep in ((covered, confirmed), (usable, eligible)):
            rows, _ = hungarian(d[:, keep], max_cost=MATCH_M)
            tally[gt[rows]] += 1
    s = acc.summary()
    cover, use = covered / np.maximum(counted, 1), usable / np.maximum(counted, 1)
    return {"id_switches": s.num_switches, "mota": s.mota, "idf1": idf1(frames, MATCH_M),
            "false_positives": s.num_false_positives, "coverage_mean": float(cover.mean()),
            "coverage_min": float(cover.min()), "usable_mean": float(use.mean()), "usable_min": float(use.min()),
            "tracks_created": last_id,
            "updates": len(events)}


@exit_on_error
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=5, help="seeds per row (default 5)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of stamp time per run (default 20)")
    p.add_argument("--margin-px", type=float, default=None,
                   help="view margin of the 'view' mode (default: tracker_node's view_margin_px)")
    p.add_argument("--radius-m", type=float, default=None,
                   help="object radius of the 'view' mode (default: tracker_node's view_object_radius_m)")
    p.add_argument("--json", default="", help="also write the rows here")
    args = p.parse_args()
    check_args(p, args, {"--json": JSON})
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from fdl_robot.ros.parameters import defaults   # tracker_node's defaults (no ROS import)

    node = defaults("tracker_node")
    margin = (node["view_margin_px"] if args.margin_px is None else args.margin_px,
              node["view_object_radius_m"] if args.radius_m is None else args.radius_m)
    modes = {"blind": None, "view-bare": (0.0, 0.0), "view": margin}
    keys = ("coverage_mean", "coverage_min", "usable_mean", "usable_min", "id_switches", "tracks_created",
            "false_positives", "mota", "idf1")
    rows = []
    print(f"{'scenario':12s} {'stamps':6s} {'tracker':9s} {'coverage':>8s} {'worst':>6s} {'usable':>7s} "
          f"{'worst':>6s} {'IDSW':>6s} {'ids':>6s} {'FP':>7s} {'MOTA':>7s} {'IDF1':>6s}")
    for sc in scenarios():
        for synchronised in (True, False):
            for mode, view_margin in modes.items():
                runs = [run(sc, synchronised, view_margin, seed, args.duration) for seed in range(args.seeds)]
                row = {"scenario": sc.name, "stamps": "sync" if synchronised else "async", "tracker": mode,
                       **{k: float(np.mean([r[k] for r in runs])) for k in keys}, "per_seed": runs}
                rows.append(row)
                print(f"{row['scenario']:12s} {row['stamps']:6s} {mode:9s} {row['coverage_mean']:8.3f} "
                      f"{row['coverage_min']:6.3f} {row['usable_mean']:7.3f} {row['usable_min']:6.3f} "
                      f"{row['id_switches']:6.1f} {row['tracks_created']:6.1f} {row['false_positives']:7.1f} "
                      f"{row['mota']:7.3f} {row['idf1']:6.3f}")
    print(f"(view: margin {margin[0]:g} px, object radius {margin[1]:g} m; {args.seeds} seeds x "
          f"{args.duration:g} s; load average {os.getloadavg()[0]:.2f})")
    if args.json:
        write_json(args.json, {"rows": rows, "seeds": args.seeds, "duration_s": args.duration, "rate_hz": HZ,
                               "view_margin_px": margin[0], "view_object_radius_m": margin[1],
                               "match_distance_m": MATCH_M,
                               "detection": {"p": DETECT_P, "p_cut": EDGE_DETECT_P, "object_radius_m": OBJECT_RADIUS_M,
                                             "pixel_sigma_px": PIXEL_SIGMA_PX, "depth_sigma_m_at_1m": DEPTH_SIGMA_M,
                                             "camera_bias_m": BIAS_M, "clutter_per_frame": CLUTTER_PER_FRAME,
                                             "stamp_jitter_s": JITTER_S}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

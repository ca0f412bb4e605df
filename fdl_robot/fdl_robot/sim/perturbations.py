"""Scene perturbations: the cube shifted during the reach, knocked out of the gripper, the bin
moved, a conveyor.

A perturbation changes the world while the robot works, so that a policy must react to what
it sees. Every kind is deterministic per seed: its parameters (distance, direction, speed,
trigger) are drawn at :meth:`~fdl_robot.sim.env.PickPlaceEnv.reset` from the episode seed on
a stream of their own (``PERTURBATION_STREAM``), so a seed gives every policy the same
perturbation and the unperturbed draws of the episode (objects, colours, lights) are the
same as with ``"none"``. *When* it fires depends on the robot: a trigger on the state.

Frames and units: ``base_link`` (the MuJoCo world of the cell; x forward, y left, z up, the
table top at z = 0), metres, seconds, m/s. Motions follow the minimum-jerk profile
``s(x) = 10x^3 - 15x^4 + 6x^5`` over ``T`` seconds: a slide of ``d`` metres peaks at
``1.875 d / T`` m/s and ``5.77 d / T^2`` m/s^2.

Kinds (:data:`PERTURBATIONS`)
-----------------------------
``none``
    Nothing happens.
``shift``
    The cube is displaced during the reach. Trigger: the first physics step at which the
    tool centre point (TCP) is within ``trigger_m`` (drawn in ``shift_trigger_m``) of the
    cube horizontally, the gripper open and the cube untouched. The cube then slides
    ``d`` (in ``shift_distance_m``, 5-15 cm) on the table along a direction drawn so that
    it ends inside the object region and clear of every distractor, over
    ``shift_duration_s`` (0.5 s: at most 0.56 m/s and 3.5 m/s^2).
``drop``
    The cube is knocked out of the gripper during the carry. Trigger: the cube held at
    least ``lift_m`` above its resting height, and carried a fraction ``f`` (in
    ``drop_progress``) of the horizontal way from where it was picked to the bin, or to
    within ``drop_region_margin_m`` of leaving the object region, whichever comes first. The
    gripper then fails open for ``drop_fault_s`` (its commands are ignored), and when the
    cube leaves the fingers its horizontal velocity is set to ``w`` (in
    ``drop_speed_m_s``) along the heading, of 24 evenly spaced ones (offset by a drawn
    angle), whose ballistic landing point ``p + w sqrt(2 h / g) u`` lies inside the object
    region (else nearest to it) and farthest from every distractor: it lands on the table,
    away from the bin, where a gripper fits around it.
``bin``
    The bin is moved. Trigger: the cube first held ``lift_m`` above its resting height.
    The bin then slides ``d`` (in ``bin_distance_m``) within ``bin_region_*`` over
    ``bin_duration_s``.
``mixed``
    One of ``shift``, ``drop`` and ``bin`` per seed, each with probability 1/3 (the
    "perturbed" evaluation).
``conveyor``
    From the start, every cube resting on the table inside the belt (the object region
    grown by ``belt_margin_m``) moves with one velocity: speed in ``conveyor_speed_m_s``
    (2-8 cm/s), heading uniform. A cube the gripper touches is not driven; one carried off
    the belt stops (friction).

Outcomes: :attr:`Perturbation.fired_s` (simulated time of the trigger, None if it never
fired) and :attr:`Perturbation.grasps` (how many times the cube was taken off the table:
re-grasps = grasps - 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from fdl_robot.sim import scene
from fdl_robot.sim.expert import min_jerk, min_jerk_rate

if TYPE_CHECKING:
    from fdl_robot.sim.env import PickPlaceEnv

__all__ = ["MIXED", "PERTURBATIONS", "PERTURBATION_STREAM", "Perturbation", "PerturbationConfig", "check_perturbation"]

PERTURBATIONS = ("none", "shift", "drop", "bin", "conveyor", "mixed")
#: The kinds ``mixed`` draws from.
MIXED = ("shift", "drop", "bin")
#: Seed-sequence tag of the perturbations' draws: a stream of their own (module doc).
PERTURBATION_STREAM = 0x9E27


def check_perturbation(kind: str) -> str:
    """``kind`` if it is one of :data:`PERTURBATIONS`, else ValueError naming them."""
    if kind not in PERTURBATIONS:
        raise ValueError(f"perturbation must be one of {', '.join(PERTURBATIONS)}; got {kind!r}")
    return kind


@dataclass(frozen=True)
class PerturbationConfig:
    """The ranges each perturbation draws from (module doc); ranges are inclusive (lo, hi)."""

    shift_distance_m: tuple[float, float] = (0.05, 0.15)
    shift_duration_s: float = 0.5
    #: Horizontal TCP-cube distance at which the shift fires (the reach).
    shift_trigger_m: tuple[float, float] = (0.08, 0.20)
    #: Clearance of the shifted cube from every distractor (centres).
    shift_clearance_m: float = 0.08
    #: Height above its resting height at which the cube counts as lifted (drop, bin).
    lift_m: float = 0.04
    drop_progress: tuple[float, float] = (0.2, 0.5)
    #: The drop fires at the latest when the carried cube comes this close to leaving the object region.
    drop_region_margin_m: float = 0.02
    drop_fault_s: float = 0.6
    drop_speed_m_s: tuple[float, float] = (0.1, 0.3)
    bin_distance_m: tuple[float, float] = (0.05, 0.12)
    bin_duration_s: float = 0.6
    bin_region_x_m: tuple[float, float] = (0.35, 0.58)
    bin_region_y_m: tuple[float, float] = (0.27, 0.43)
    conveyor_speed_m_s: tuple[float, float] = (0.02, 0.08)
    belt_margin_m: float = 0.08

    def __post_init__(self):
        for name in ("shift_distance_m", "shift_trigger_m", "drop_progress", "drop_speed_m_s", "bin_distance_m",
                     "bin_region_x_m", "bin_region_y_m", "conveyor_speed_m_s"):
            lo, hi = getattr(self, name)
            if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo <= hi):
                raise ValueError(f"{name} must be a range 0 <= lo <= hi, got {(lo, hi)}")
        for name in ("shift_duration_s", "drop_fault_s", "bin_duration_s", "lift_m"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


@dataclass
class _Slide:
    """A min-jerk slide from ``p0`` by ``delta`` (m, base_link) starting at ``t0_s``."""

    p0: np.ndarray
    delta: np.ndarray
    t0_s: float
    duration_s: float

    def at(self, t_s: float) -> tuple[np.ndarray, np.ndarray, bool]:
        """(position (m), velocity (m/s), finished) at ``t_s``."""
        x = (t_s - self.t0_s) / self.duration_s
        if x >= 1.0:
            return self.p0 + self.delta, np.zeros_like(self.delta), True
        return self.p0 + min_jerk(x) * self.delta, min_jerk_rate(x) / self.duration_s * self.delta, False


@dataclass
class Perturbation:
    """One episode's perturbation: its drawn parameters and its state (module doc).

    Built by :meth:`sample` at reset; :meth:`before_physics_step` is called by the env
    before every physics step and changes the world when the trigger holds.
    """

    kind: str
    config: PerturbationConfig
    params: dict[str, float] = field(default_factory=dict)
    #: Simulated time (s) the perturbation fired, None until then.
    fired_s: float | None = None
    #: Times the cube was taken off the table (re-grasps = grasps - 1).
    grasps: int = 0
    #: True while the gripper's commands are ignored (drop: the fault).
    gripper_fault: bool = False
    _slide: _Slide | None = None
    _pick_xy: np.ndarray | None = None
    _held: bool = False
    _fault_until_s: float = -1.0
    _knocked: bool = False

    def outcome(self) -> dict:
        """What was drawn and what happened so far (JSON-ready): kind, params, fired_s, grasps."""
        return {"kind": self.kind, "params": dict(self.params), "fired_s": self.fired_s, "grasps": self.grasps}

    # ------------------------------------------------------------------ sampling
    @classmethod
    def sample(cls, kind: str, env: PickPlaceEnv, config: PerturbationConfig | None = None) -> Perturbation:
        """Draw the episode's parameters from ``env.seed`` (after the env placed the objects)."""
        cfg = config if config is not None else PerturbationConfig()
        check_perturbation(kind)
        rng = np.random.default_rng([env.seed, PERTURBATION_STREAM])
        if kind == "mixed":
            kind = MIXED[int(rng.integers(len(MIXED)))]
        params: dict[str, float] = {}
        if kind == "shift":
            params["trigger_m"] = rng.uniform(*cfg.shift_trigger_m)
            params["distance_m"] = rng.uniform(*cfg.shift_distance_m)
            params["heading_rad"] = _clearest_heading(env.object_position(scene.TARGET_NAME)[:2],
                                                      params["distance_m"], rng.uniform(-math.pi, math.pi, 64), env,
                                                      cfg.shift_clearance_m)
        elif kind == "drop":
            params["progress"] = rng.uniform(*cfg.drop_progress)
            params["speed_m_s"] = rng.uniform(*cfg.drop_speed_m_s)
            params["heading_offset_rad"] = rng.uniform(0.0, 2.0 * math.pi / 24)
        elif kind == "bin":
            params["distance_m"] = rng.uniform(*cfg.bin_distance_m)
            p_bin = env.object_position(scene.BIN_NAME)[:2]
            lo = np.array([cfg.bin_region_x_m[0], cfg.bin_region_y_m[0]])
            hi = np.array([cfg.bin_region_x_m[1], cfg.bin_region_y_m[1]])
            for _ in range(100):
                heading = rng.uniform(-math.pi, math.pi)
                end = p_bin + params["distance_m"] * np.array([math.cos(heading), math.sin(heading)])
                if np.all(end >= lo) and np.all(end <= hi):
                    break
            params["heading_rad"] = heading
        elif kind == "conveyor":
            params["speed_m_s"] = rng.uniform(*cfg.conveyor_speed_m_s)
            params["heading_rad"] = rng.uniform(-math.pi, math.pi)
        return cls(kind=kind, config=cfg, params={k: float(v) for k, v in params.items()},
                   fired_s=0.0 if kind == "conveyor" else None)

    # -------------------------------------------------------------------- stepping
    def before_physics_step(self, env: PickPlaceEnv) -> None:
        """Count grasps, fire the trigger, and drive what moves (module doc)."""
        if self.kind == "none":
            return
        t = env.time_s
        held = env.cube_lifted(self.config.lift_m)
        if held and not self._held:
            self.grasps += 1
            if self._pick_xy is None:
                self._pick_xy = env.object_position(scene.TARGET_NAME)[:2].copy()
        self._held = held
        getattr(self, f"_step_{self.kind}")(env, t)

    def _step_shift(self, env: PickPlaceEnv, t: float) -> None:
        cube = env.object_position(scene.TARGET_NAME)
        if self.fired_s is None:
            tcp = env.tcp_pose().position_m
            if (np.linalg.norm(tcp[:2] - cube[:2]) < self.params["trigger_m"] and env.gripper_closure < 0.1
                    and not env.touches_gripper(scene.TARGET_NAME)):
                self.fired_s = t
                h = self.params["heading_rad"]
                delta = self.params["distance_m"] * np.array([math.cos(h), math.sin(h), 0.0])
                self._slide = _Slide(cube.copy(), delta, t, self.config.shift_duration_s)
        if self._slide is not None:
            p, v, done = self._slide.at(t)
            env.drive_object(scene.TARGET_NAME, p, v)
            if done:
                self._slide = None

    def _step_drop(self, env: PickPlaceEnv, t: float) -> None:
        if self.fired_s is None:
            if not self._held or self._pick_xy is None:
                return
            cube_xy = env.object_position(scene.TARGET_NAME)[:2]
            bin_xy = env.object_position(scene.BIN_NAME)[:2]
            way = np.linalg.norm(bin_xy - self._pick_xy)
            lo, hi = env.object_region_m
            margin = self.config.drop_region_margin_m
            leaving = not (np.all(cube_xy >= lo - margin) and np.all(cube_xy <= hi + margin))
            if leaving or np.linalg.norm(cube_xy - self._pick_xy) >= self.params["progress"] * way:
                self.fired_s = t
                self._fault_until_s = t + self.config.drop_fault_s
        self.gripper_fault = t < self._fault_until_s
        if self.gripper_fault and not self._knocked and not env.touches_gripper(scene.TARGET_NAME):
            self._knocked = True
            cube = env.object_position(scene.TARGET_NAME)
            w = self.params["speed_m_s"]
            flight_m = w * math.sqrt(2.0 * max(cube[2] - scene.CUBE_HALF_M, 0.0) / 9.81)
            headings = self.params["heading_offset_rad"] + np.arange(24) * (2.0 * math.pi / 24)
            h = _clearest_heading(cube[:2], flight_m, headings, env)
            env.push_object(scene.TARGET_NAME, w * np.array([math.cos(h), math.sin(h)]))

    def _step_bin(self, env: PickPlaceEnv, t: float) -> None:
        if self.fired_s is None and self._held:
            self.fired_s = t
            h = self.params["heading_rad"]
            delta = self.params["distance_m"] * np.array([math.cos(h), math.sin(h), 0.0])
            self._slide = _Slide(env.object_position(scene.BIN_NAME).copy(), delta, t,
                                 self.config.bin_duration_s)
        if self._slide is not None:
            p, _, done = self._slide.at(t)
            env.move_bin(p)
            if done:
                self._slide = None

    def _step_conveyor(self, env: PickPlaceEnv, t: float) -> None:
        h = self.params["heading_rad"]
        v = self.params["speed_m_s"] * np.array([math.cos(h), math.sin(h), 0.0])
        lo, hi = env.object_region_m
        lo, hi = lo - self.config.belt_margin_m, hi + self.config.belt_margin_m
        for name in env.cube_names:
            p = env.object_position(name)
            on_belt = (p[2] < scene.CUBE_HALF_M + 0.005 and np.all(p[:2] >= lo) and np.all(p[:2] <= hi)
                       and not env.touches_gripper(name))
            if on_belt:
                env.drive_object(name, p + v * env.physics_dt_s, v)


def _clearest_heading(start_xy: np.ndarray, distance_m: float, headings: np.ndarray, env: PickPlaceEnv,
                      enough_m: float = np.inf) -> float:
    """Of ``headings`` (rad), the first along which a cube moved ``distance_m`` from ``start_xy``
    ends inside the object region with every distractor at least ``enough_m`` from its path;
    else the one ending nearest the region, and of those the one with the largest clearance.

    Clearance: the smallest distance of a distractor centre to the segment start -> end (m).
    """
    lo, hi = env.object_region_m
    others = np.array([env.object_position(n)[:2] for n in env.active_distractors]).reshape(-1, 2)
    best, best_key = float(headings[0]), (-np.inf, -np.inf)
    for h in headings:
        u = np.array([math.cos(h), math.sin(h)])
        end = start_xy + distance_m * u
        outside_m = float(np.linalg.norm(np.maximum(lo - end, 0.0) + np.maximum(end - hi, 0.0)))
        s = np.clip((others - start_xy) @ u, 0.0, distance_m)
        clearance = float(np.min(np.linalg.norm(others - (start_xy + s[:, None] * u), axis=1), initial=np.inf))
        if outside_m == 0.0 and clearance >= enough_m:
            return float(h)
        if (-outside_m, clearance) > best_key:
            best, best_key = float(h), (-outside_m, clearance)
    return best

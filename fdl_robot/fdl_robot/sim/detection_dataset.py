"""Auto-labelled detection data from the simulator: boxes from geometry, clipped by visibility.

Every frame is a scene of the pick-and-place cell at some moment of a scripted expert
episode (so the arm, the gripper and a cube held in it appear as they will in closed
loop), rendered by the scene camera and/or the wrist camera (``cameras``), with one label
per visible object.

Classes (:data:`CLASS_NAMES`)::

    0 red_cube   the target (``red_cube``)
    1 cube       any other cube (``distractor_k``, random non-red colours)
    2 bin        the blue bin

Boxes
-----
1. *Amodal box from geometry.* The 8 corners of each box geom of the object, in
   ``base_link``, are taken to the optical frame with the episode's true extrinsics,
   ``p_cam = T_cam_base p_base``, and projected with :mod:`fdl_robot.core.camera`,
   ``uv = (fx x/z + cx, fy y/z + cy)``; the box is the extent of the projected corners.
2. *Visibility from segmentation.* MuJoCo's segmentation render gives the object's
   visible pixels ``M``. The visible fraction is ``|M| / A`` with ``A`` the area in
   pixels of the object's silhouette alone, inside the image (the convex hull of its
   projected corners: exact for a cube, an upper bound for the hollow bin); ``in_image`` is
   the fraction of that hull inside the image (below 1 for an object cut by the border).
3. *Clipping.* A fully visible object keeps its sub-pixel amodal box (cut by the image
   border: the extent of its silhouette inside the image, which the wide wrist camera
   often needs); a partly hidden one gets the amodal box intersected with the bounding box
   of ``M`` (an occluded cube is labelled where it can be seen). Objects less than
   ``min_visibility`` visible or with fewer than ``min_pixels`` pixels get no label.

Pixel convention: the pinhole model puts pixel centres at integer ``uv``
(``cx = (W - 1) / 2``), while YOLO/COCO boxes measure image *edges* (pixel ``i`` covers
``[i, i + 1)``), so labels are ``uv + 0.5``; :func:`fdl_robot.core.camera.lift_boxes`
undoes it. Labels are written in ultralytics format (``class cx cy w h``, normalised),
with a dataset yaml; train and validation come from disjoint seed ranges. A wrist-camera
frame of the same moment is named like the scene frame plus ``_wrist``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import mujoco
import numpy as np
from tqdm import tqdm

from fdl_robot.core.camera import PinholeCamera
from fdl_robot.core.geometry import Transform
from fdl_robot.outputs import write_image
from fdl_robot.sim import scene
from fdl_robot.sim.env import PickPlaceConfig, PickPlaceEnv
from fdl_robot.sim.expert import ScriptedExpert

__all__ = ["CLASS_NAMES", "LabelConfig", "ObjectLabel", "Frame", "object_class", "geom_corners_base",
           "label_objects", "episode_frames", "write_yolo_dataset"]

CLASS_NAMES: tuple[str, ...] = ("red_cube", "cube", "bin")

#: Seeds of the shipped dataset: train and validation never overlap with each other, with
#: the ACT demonstrations (0..) or with the closed-loop evaluations (1000.., 5000..).
TRAIN_SEED0 = 10_000
VAL_SEED0 = 20_000


def object_class(name: str) -> int:
    """Detector class id of a simulator object name."""
    if name == scene.TARGET_NAME:
        return 0
    if name in scene.DISTRACTOR_NAMES:
        return 1
    if name == scene.BIN_NAME:
        return 2
    raise KeyError(f"no detector class for object '{name}'")


@dataclass(frozen=True)
class LabelConfig:
    min_visibility: float = 0.15     # visible fraction below which an object is not labelled
    min_pixels: int = 12             # fewer visible pixels: not labelled
    full_visibility: float = 0.97    # at or above: keep the exact amodal box


@dataclass(frozen=True)
class ObjectLabel:
    """One labelled object: box XYXY in edge coordinates (pixels), ground truth in base_link."""

    name: str
    class_id: int
    box_xyxy: np.ndarray         # (4,) pixels, edge convention
    visibility: float            # visible fraction in [0, 1]
    p_base_m: np.ndarray         # (3,) object centre in base_link
    depth_m: float               # z of the centre in the optical frame
    in_image: float = 1.0        # fraction of the silhouette inside the image (< 1: cut by the border)


@dataclass
class Frame:
    """A rendered frame with its labels and what is needed to evaluate 3D localisation."""

    seed: int
    step: int
    rgb: np.ndarray              # (H, W, 3) uint8
    depth_m: np.ndarray          # (H, W) float32 metres, NaN invalid
    labels: list[ObjectLabel]
    camera: PinholeCamera
    T_base_cam: Transform        # true extrinsics of this episode (and, for the wrist camera, moment)
    T_base_cam_nominal: Transform  # nominal: the scene camera's, or FK(q) times the wrist's nominal mount
    camera_name: str = scene.SCENE_CAMERA


def geom_corners_base(model: mujoco.MjModel, data: mujoco.MjData, body_id: int) -> np.ndarray:
    """Corners (8 per box geom, (8n, 3)) in the world frame = base_link of a body's box geoms."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float)
    corners = []
    for g in np.flatnonzero(model.geom_bodyid == body_id):
        if model.geom_type[g] != mujoco.mjtGeom.mjGEOM_BOX:
            continue
        R = data.geom_xmat[g].reshape(3, 3)
        local = signs * model.geom_size[g]
        corners.append(data.geom_xpos[g] + local @ R.T)
    if not corners:
        raise ValueError(f"body {body_id} has no box geoms")
    return np.vstack(corners)


def label_objects(env: PickPlaceEnv, segmentation: np.ndarray, config: LabelConfig = LabelConfig(),
                  camera: str | None = None) -> list[ObjectLabel]:
    """Labels of every object visible in the env's current state (``camera``, default the scene
    camera, at its true pose); ``segmentation`` is that camera's render."""
    h, w = segmentation.shape
    camera = camera or env.config.camera_name
    cam = env.camera_intrinsics(camera, w, h)
    T_cam_base = env.camera_extrinsics(camera).inverse()
    labels = []
    for name in env.object_names:
        body = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_BODY, name)
        p_cam = T_cam_base.apply(geom_corners_base(env.model, env.data, body))
        if np.any(p_cam[:, 2] <= env.depth_near_m):
            continue                                   # behind the camera or clipped by its near plane
        uv = cam.project(p_cam)                        # pixel-centre convention
        hull = cv2.convexHull((uv + 0.5).astype(np.float32))           # edge coordinates
        frame = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
        area_px, inside = cv2.intersectConvexConvex(hull, frame)        # silhouette in the image
        visible = segmentation == env.segmentation_labels[name]
        n_visible = int(visible.sum())
        visibility = min(1.0, n_visible / max(float(area_px), 1.0))
        if n_visible < config.min_pixels or visibility < config.min_visibility:
            continue
        box = np.concatenate([uv.min(axis=0), uv.max(axis=0)]) + 0.5   # edge convention
        if np.any(box[:2] < 0) or np.any(box[2:] > (w, h)):
            if inside is None:
                continue
            # cut by the image border: the extent of the part of the silhouette inside the image
            box = np.concatenate([inside.reshape(-1, 2).min(axis=0), inside.reshape(-1, 2).max(axis=0)])
        box = np.clip(box, 0, [w, h, w, h])
        if visibility < config.full_visibility:
            rows, cols = np.nonzero(visible)
            seen = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], float)
            box = np.concatenate([np.maximum(box[:2], seen[:2]), np.minimum(box[2:], seen[2:])])
        if np.any(box[2:] - box[:2] < 1.0):
            continue
        p_base = env.object_pose(name).position_m
        in_image = min(1.0, float(area_px) / max(float(cv2.contourArea(hull)), 1.0))
        labels.append(ObjectLabel(name, object_class(name), box, visibility, p_base,
                                  float(T_cam_base.apply(p_base[None])[0, 2]), in_image))
    return labels


def episode_frames(env: PickPlaceEnv, expert: ScriptedExpert, seed: int, n_frames: int,
                   max_step: int = 400, label_config: LabelConfig = LabelConfig(),
                   cameras: tuple[str, ...] = (scene.SCENE_CAMERA,)) -> Iterator[Frame]:
    """``n_frames`` labelled frames per camera of one expert episode at seeded random control
    steps (the same steps for every camera; in ``cameras``' order at each step)."""
    rng = np.random.default_rng([seed, 0xD7EC7])
    steps = set(np.sort(rng.choice(max_step, size=n_frames, replace=False)).tolist())
    obs = env.reset(seed)
    expert.reset()
    for step in range(max_step):
        if step in steps:
            for camera in cameras:
                rgb, depth = env.render_rgbd(camera)
                labels = label_objects(env, env.render_segmentation(camera), label_config, camera)
                yield Frame(seed, step, rgb, depth, labels, env.camera_intrinsics(camera),
                            env.camera_extrinsics(camera), env.camera_extrinsics_nominal(camera), camera)
        obs, *_ = env.step(expert.act(obs))


def _yolo_line(label: ObjectLabel, w: int, h: int) -> str:
    x1, y1, x2, y2 = label.box_xyxy
    return (f"{label.class_id} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} "
            f"{(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")


def write_yolo_dataset(out_dir: str | Path, n_train_episodes: int = 250, n_val_episodes: int = 60,
                       frames_per_episode: int = 4, image_width: int = 640, image_height: int = 480,
                       train_seed0: int = TRAIN_SEED0, val_seed0: int = VAL_SEED0,
                       jpeg_quality: int = 95, progress: bool = True,
                       cameras: tuple[str, ...] = (scene.SCENE_CAMERA,)) -> Path:
    """Render, label and write an ultralytics dataset; return the path of its yaml.

    ``cameras``: MJCF camera names whose frames go in (scene frames ``<seed>_<step>``, wrist
    frames ``<seed>_<step>_wrist``), every camera at the same moments.

    Layout: ``images/{train,val}/<seed>_<step>.jpg``, ``labels/{train,val}/<same>.txt``,
    ``meta/{train,val}.jsonl`` (one line per frame: seed, step, objects with box,
    visibility, class, base_link centre and depth), ``dataset.yaml``, ``info.json``.
    """
    out = Path(out_dir)
    env = PickPlaceEnv(PickPlaceConfig(image_width=image_width, image_height=image_height))
    expert = ScriptedExpert(env.model)
    counts: dict[str, Any] = {}
    try:
        for split, seed0, n_eps in (("train", train_seed0, n_train_episodes), ("val", val_seed0, n_val_episodes)):
            (out / "images" / split).mkdir(parents=True, exist_ok=True)
            (out / "labels" / split).mkdir(parents=True, exist_ok=True)
            (out / "meta").mkdir(parents=True, exist_ok=True)
            per_class = np.zeros(len(CLASS_NAMES), int)
            n_frames = 0
            with open(out / "meta" / f"{split}.jsonl", "w") as meta:
                for seed in tqdm(range(seed0, seed0 + n_eps), desc=f"rendering {split}", unit="ep",
                                 disable=not progress):
                    for frame in episode_frames(env, expert, seed, frames_per_episode, cameras=cameras):
                        stem = f"{frame.seed}_{frame.step:03d}" + (
                            "" if frame.camera_name == scene.SCENE_CAMERA else "_wrist")
                        bgr = cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR)
                        write_image(out / "images" / split / f"{stem}.jpg", bgr, "dataset image",
                                    [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
                        (out / "labels" / split / f"{stem}.txt").write_text(
                            "".join(_yolo_line(lb, image_width, image_height) + "\n" for lb in frame.labels))
                        meta.write(json.dumps({
                            "image": f"images/{split}/{stem}.jpg", "seed": frame.seed, "step": frame.step,
                            "camera": frame.camera_name,
                            "objects": [{"name": lb.name, "class_id": lb.class_id,
                                         "box_xyxy": np.round(lb.box_xyxy, 3).tolist(),
                                         "visibility": round(lb.visibility, 4),
                                         "p_base_m": np.round(lb.p_base_m, 6).tolist(),
                                         "depth_m": round(lb.depth_m, 5)} for lb in frame.labels]}) + "\n")
                        for lb in frame.labels:
                            per_class[lb.class_id] += 1
                        n_frames += 1
            counts[split] = {"episodes": n_eps, "seeds": [seed0, seed0 + n_eps - 1], "frames": n_frames,
                             "instances": dict(zip(CLASS_NAMES, per_class.tolist(), strict=True))}
    finally:
        env.close()
    yaml_path = out / "dataset.yaml"
    yaml_path.write_text(f"# fdl_robot simulated pick-and-place cell, auto-labelled (fdl_robot.sim.detection_dataset)\n"
                         f"path: {out.resolve()}\ntrain: images/train\nval: images/val\n"
                         f"names:\n" + "".join(f"  {i}: {n}\n" for i, n in enumerate(CLASS_NAMES)))
    (out / "info.json").write_text(json.dumps({
        "splits": counts, "image_size_wh": [image_width, image_height],
        "frames_per_episode": frames_per_episode, "cameras": list(cameras),
        "label_config": asdict(LabelConfig()),
        "classes": list(CLASS_NAMES)}, indent=2))
    return yaml_path

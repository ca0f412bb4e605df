"""Synthetic RGB-D frames with known ground truth, for tests and the pipeline demo.

Each cube is drawn as the square it presents to the camera when its near face is
fronto-parallel: centre p_cam = T_base_cam^-1 p_base, near face at depth
z_front = z_center - size/2, corners (x +- size/2, y +- size/2, z_front) projected with
the pinhole model. The colour image gets the cube's colour inside that square and the
aligned depth image (uint16 millimetres, realsense 16UC1) gets z_front there; the
background is a grey table plane at ``table_depth_m``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fdl_robot.core.camera import PinholeCamera
from fdl_robot.core.geometry import Transform

COLORS_RGB = {"red_cube": (200, 20, 20), "green_cube": (20, 170, 40),
              "blue_cube": (20, 40, 200), "yellow_cube": (220, 200, 20)}


@dataclass(frozen=True)
class Cube:
    name: str
    p_base: tuple[float, float, float]   # centre, metres, base_link
    size_m: float = 0.04


def render_cubes(camera: PinholeCamera, T_base_cam: Transform, cubes: list[Cube],
                 table_depth_m: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (rgb HxWx3 uint8, depth HxW uint16 mm, boxes Nx4 XYXY pixels of the cubes).

    Boxes are in image-edge coordinates like a detector's (projected corners + 0.5; see
    :func:`fdl_robot.core.camera.lift_boxes`); pixels whose centre lies in the square are
    painted.
    """
    h, w = camera.height, camera.width
    rgb = np.full((h, w, 3), 110, np.uint8)
    depth_mm = np.full((h, w), round(table_depth_m * 1000), np.uint16)
    T_cam_base = T_base_cam.inverse()
    boxes = []
    for cube in sorted(cubes, key=lambda c: -T_cam_base.apply(np.array(c.p_base))[2]):  # far first
        x, y, z = T_cam_base.apply(np.array(cube.p_base, float))
        half = cube.size_m / 2
        z_front = z - half
        corners = np.array([[x - half, y - half, z_front], [x + half, y + half, z_front]])
        (u1, v1), (u2, v2) = camera.project(corners)
        boxes.append([u1 + 0.5, v1 + 0.5, u2 + 0.5, v2 + 0.5])
        cols = slice(max(int(np.ceil(u1)), 0), min(int(np.floor(u2)) + 1, w))
        rows = slice(max(int(np.ceil(v1)), 0), min(int(np.floor(v2)) + 1, h))
        rgb[rows, cols] = COLORS_RGB[cube.name]
        depth_mm[rows, cols] = round(z_front * 1000)
    order = np.argsort([-T_cam_base.apply(np.array(c.p_base))[2] for c in cubes])
    out_boxes = np.zeros((len(cubes), 4))
    out_boxes[order] = np.asarray(boxes).reshape(-1, 4)
    return rgb, depth_mm, out_boxes

"""fdl_robot.sim: MuJoCo pick-and-place cell, scripted expert, demonstration datasets.

Modules (see ``sim/README.md`` for conventions, data format and measured figures):

* :mod:`scene`   -- the MJCF asset (UR5e-like arm, parallel gripper, cubes, bin, cameras)
* :mod:`camera`  -- MuJoCo <-> ROS camera conventions: intrinsics, optical frame, depth units
* :mod:`depth_model` -- a RealSense-like stereo depth model (noise, holes, range, quantisation)
* :mod:`env`     -- ``PickPlaceEnv``: reset(seed) / step(action), RGB-D, segmentation
* :mod:`expert`  -- ``ScriptedExpert``: waypoint pick-and-place from ground truth
* :mod:`dataset` -- ``record_demos``: ACT-layout HDF5 episodes with perceived object positions
* :mod:`detection_dataset` -- rendered frames and labels for training and evaluating the detector
* :mod:`cli`     -- ``python -m fdl_robot.sim.cli {record,evaluate,bench,snapshot}``

Submodules are imported on demand (``from fdl_robot.sim.env import PickPlaceEnv``) so
that importing this package does not load MuJoCo. Rendering is headless: importing this
package sets ``MUJOCO_GL=egl`` unless it is set already. MuJoCo reads the variable when it
is first imported, and every module of fdl_robot that uses MuJoCo lives in this package,
so this is the one place that chooses the GL backend.
"""
import os

os.environ.setdefault("MUJOCO_GL", "egl")

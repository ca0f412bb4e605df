"""fdl_robot.sim: MuJoCo pick-and-place cell, scripted expert, demonstration datasets.

Modules (see ``sim/README.md`` for conventions, data format and measured figures):

* :mod:`scene`   -- the MJCF asset (UR5e-like arm, parallel gripper, cubes, bin, cameras)
* :mod:`camera`  -- MuJoCo <-> ROS camera conventions: intrinsics, optical frame, depth units
* :mod:`env`     -- ``PickPlaceEnv``: reset(seed) / step(action), RGB-D, segmentation
* :mod:`ik`      -- damped-least-squares IK on MuJoCo's site Jacobian
* :mod:`expert`  -- ``ScriptedExpert``: waypoint pick-and-place from ground truth
* :mod:`dataset` -- ``record_demos``: ACT-layout HDF5 episodes with perceived object positions
* :mod:`cli`     -- ``python -m fdl_robot.sim.cli {record,evaluate,bench,snapshot}``

Submodules are imported on demand (``from fdl_robot.sim.env import PickPlaceEnv``) so
that importing this package does not load MuJoCo.
"""

"""The mathematical core of fdl_robot (seed chapters 23-29).

Plain numpy/scipy; this package never imports ROS (a test enforces it) and never
imports torch.  One concept per module:

* :mod:`geometry`   -- SE(3) rigid transforms, quaternions (x, y, z, w), RPY
* :mod:`camera`     -- the pinhole model, distortion, robust depth inside a box
* :mod:`boxes`      -- box formats, IoU / GIoU, (class-aware) NMS
* :mod:`decoding`   -- YOLO anchor-grid decoding and DETR post-processing
* :mod:`metrics`    -- COCO-style AP and mAP@[.5:.95]
* :mod:`assignment` -- optimal (Hungarian) and greedy assignment with gating
* :mod:`tracking`   -- constant-velocity Kalman filter and multi-object tracker
* :mod:`mot_metrics` -- CLEAR-MOT evaluation (MOTA, ID switches, RMSE)
* :mod:`ensembling` -- ACT temporal ensembling of overlapping action chunks
"""

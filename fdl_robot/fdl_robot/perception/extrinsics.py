"""Where camera-to-robot transforms come from (replaceable: tf2 is not on PyPI).

A transform source answers ``lookup(target_frame, source_frame, stamp_s) -> Transform``
with T_target_source (p_target = T.apply(p_source)) valid at the image stamp. The
static source holds one hand-eye calibration (xyz + quaternion x, y, z, w) from the
configuration; a tf2-backed source with the same method can replace it on a full ROS 2
install (looking up at the image stamp, not at "latest").
"""
from __future__ import annotations

from fdl_robot.core.geometry import Transform


class StaticExtrinsics:
    """A fixed T_target_source, e.g. T_base_cam of a calibrated, rigidly mounted camera."""

    def __init__(self, target_frame: str, source_frame: str | None, xyz, quat_xyzw):
        self.target_frame = target_frame
        self.source_frame = source_frame          # None: accept any source frame name
        self.T_target_source = Transform.from_quaternion(quat_xyzw, xyz)

    def lookup(self, target_frame: str, source_frame: str, stamp_s: float) -> Transform:
        if target_frame != self.target_frame:
            raise LookupError(f"no transform to '{target_frame}' (only to '{self.target_frame}')")
        if self.source_frame is not None and source_frame != self.source_frame:
            raise LookupError(f"no transform from '{source_frame}' (only from '{self.source_frame}')")
        return self.T_target_source

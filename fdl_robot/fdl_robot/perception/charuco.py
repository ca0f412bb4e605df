"""A ChArUco calibration board: its layout, its image, its detection and its pose in a camera.

A ChArUco board is a chessboard whose white squares hold ArUco markers (OpenCV's aruco
module, ``cv2.aruco.CharucoBoard`` / ``CharucoDetector``): the markers identify every
chessboard corner, so a partly visible or partly occluded board still gives corners with
known ids, and the chessboard corners (saddle points) refine to a fraction of a pixel.

Board frame
-----------
OpenCV's board frame: origin at the outer corner of the top-left square (the board image's
top-left corner), x along the rows to the right, y down the columns, z into the board (away
from a viewer who sees the printed side), metres. The interior chessboard corner with id
``k`` sits at ``p_board = ((k % (nx - 1) + 1) s, (k // (nx - 1) + 1) s, 0)`` for ``nx``
squares across and squares of side ``s``.

Board pose
----------
With the camera intrinsics K (and distortion, if any) of :class:`~fdl_robot.core.camera.PinholeCamera`,
the corners ``uv_k`` (pixels) and their board points ``p_board_k`` give ``T_cam_board`` by
``cv2.solvePnP``: IPPE for a plane (the exact homography decomposition), then
Levenberg-Marquardt on the reprojection error::

    min over (R, t)  sum_k || uv_k - project(K, R p_board_k + t) ||^2

The RMS of that error (pixels) is returned with the pose.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fdl_robot.core.camera import PinholeCamera
from fdl_robot.core.geometry import Transform

__all__ = ["BoardSpec", "BoardObservation", "DEFAULT_BOARD", "MIN_CORNERS", "detect_board", "board_pose",
           "reprojection_errors_px", "draw_observation"]

#: Fewest ChArUco corners accepted for a pose: a plane's pose needs 4 non-collinear points;
#: 6 leave redundancy for the least-squares refinement and its residual.
MIN_CORNERS = 6


@dataclass(frozen=True)
class BoardSpec:
    """Layout of a ChArUco board: squares across (x) and down (y), square and marker side in
    metres, the ArUco dictionary's OpenCV name (``cv2.aruco.DICT_*``)."""

    squares_x: int = 7
    squares_y: int = 5
    square_m: float = 0.035
    marker_m: float = 0.026
    dictionary: str = "DICT_4X4_50"

    def __post_init__(self) -> None:
        if self.squares_x < 2 or self.squares_y < 2:
            raise ValueError(f"a ChArUco board needs at least 2x2 squares, got {self.squares_x}x{self.squares_y}")
        if not 0 < self.marker_m < self.square_m:
            raise ValueError(f"marker side ({self.marker_m} m) must be positive and smaller than the square "
                             f"({self.square_m} m)")
        if not hasattr(cv2.aruco, self.dictionary):
            raise ValueError(f"unknown ArUco dictionary {self.dictionary!r} (OpenCV names, e.g. DICT_4X4_50)")

    @property
    def size_m(self) -> tuple[float, float]:
        """(width, height) of the chessboard, metres."""
        return self.squares_x * self.square_m, self.squares_y * self.square_m

    @property
    def n_corners(self) -> int:
        """Interior chessboard corners: (nx - 1)(ny - 1)."""
        return (self.squares_x - 1) * (self.squares_y - 1)

    def board(self) -> cv2.aruco.CharucoBoard:
        """The OpenCV board object."""
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard((self.squares_x, self.squares_y), self.square_m, self.marker_m, dictionary)

    def corners_board(self) -> np.ndarray:
        """(n_corners, 3) board points of the corner ids 0.., metres (z = 0)."""
        return np.asarray(self.board().getChessboardCorners(), dtype=np.float64).reshape(-1, 3)

    def image(self, px_per_square: int = 100, margin_px: int = 0) -> np.ndarray:
        """The board as a grey uint8 image (H, W) to print or texture: ``px_per_square`` per
        square and a white margin of ``margin_px`` on every side."""
        size = (self.squares_x * px_per_square + 2 * margin_px, self.squares_y * px_per_square + 2 * margin_px)
        return self.board().generateImage(size, marginSize=margin_px, borderBits=1)

    def describe(self) -> str:
        return (f"ChArUco {self.squares_x}x{self.squares_y} squares of {self.square_m * 1e3:g} mm, markers "
                f"{self.marker_m * 1e3:g} mm, {self.dictionary}")


#: The board of the simulated cell and of the README's instructions (0.245 x 0.175 m, A4).
DEFAULT_BOARD = BoardSpec()


@dataclass(frozen=True)
class BoardObservation:
    """ChArUco corners found in one image: ids (K,), pixels uv (K, 2), board points (K, 3) m."""

    ids: np.ndarray
    uv: np.ndarray
    p_board: np.ndarray
    n_markers: int


def _grey(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 3:
        return cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    if a.ndim != 2:
        raise ValueError(f"image must be (H, W) or (H, W, 3), got shape {a.shape}")
    return a


def detect_board(image: np.ndarray, spec: BoardSpec = DEFAULT_BOARD, *,
                 detector: cv2.aruco.CharucoDetector | None = None) -> tuple[BoardObservation | None, str]:
    """Find the board's ChArUco corners in an RGB (or grey) image.

    Returns ``(observation, "")``, or ``(None, reason)`` when fewer than :data:`MIN_CORNERS`
    corners (or only collinear ones) were found. ``detector``: a reused
    ``cv2.aruco.CharucoDetector`` of this board (built when None).
    """
    board = spec.board()
    detector = detector or cv2.aruco.CharucoDetector(board)
    corners, ids, marker_corners, marker_ids = detector.detectBoard(_grey(image))
    n_markers = 0 if marker_ids is None else len(marker_ids)
    if ids is None or len(ids) < MIN_CORNERS:
        found = 0 if ids is None else len(ids)
        return None, f"{found} ChArUco corners ({n_markers} markers) found, need {MIN_CORNERS}"
    ids = ids.reshape(-1).astype(int)
    if board.checkCharucoCornersCollinear(ids.reshape(-1, 1)):
        return None, f"the {len(ids)} corners found are collinear"
    p_board = spec.corners_board()[ids]
    return BoardObservation(ids, corners.reshape(-1, 2).astype(np.float64), p_board, n_markers), ""


def _dist(camera: PinholeCamera) -> np.ndarray | None:
    return None if camera.dist is None else np.asarray(camera.dist)


def board_pose(observation: BoardObservation, camera: PinholeCamera) -> tuple[Transform, float]:
    """``T_cam_board`` from the corners (IPPE then LM, see the module docstring), and the RMS
    reprojection error in pixels."""
    obj = observation.p_board.reshape(-1, 1, 3)
    img = observation.uv.reshape(-1, 1, 2)
    ok, rvec, tvec = cv2.solvePnP(obj, img, camera.K, _dist(camera), flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        raise ValueError("solvePnP failed on the board corners")
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, camera.K, _dist(camera), rvec, tvec)
    T = Transform(cv2.Rodrigues(rvec)[0], tvec.reshape(3))
    err = reprojection_errors_px(T, observation, camera)
    return T, float(np.sqrt(np.mean(err ** 2)))


def reprojection_errors_px(T_cam_board: Transform, observation: BoardObservation,
                           camera: PinholeCamera) -> np.ndarray:
    """|uv_k - project(T_cam_board p_board_k)| per corner, pixels (K,)."""
    uv = camera.project(T_cam_board.apply(observation.p_board))
    return np.linalg.norm(uv - observation.uv, axis=1)


def draw_observation(image: np.ndarray, observation: BoardObservation | None,
                     spec: BoardSpec = DEFAULT_BOARD) -> np.ndarray:
    """A copy of an RGB image with the detected corners drawn (for inspection)."""
    out = np.ascontiguousarray(np.asarray(image).copy())
    if observation is not None:
        cv2.aruco.drawDetectedCornersCharuco(out, observation.uv.reshape(-1, 1, 2).astype(np.float32),
                                             observation.ids.reshape(-1, 1), (255, 0, 0))
    return out


"""Camera sources without a camera: OpenCV video files and synthetic RealSense recordings.

The RealSense path is exercised for real: ``write_synthetic_bag`` records frames of known
colour, depth and intrinsics through pyrealsense2's software device and recorder, and
``RealSenseSource`` plays the file back through librealsense (playback device, depth
units, rs.align).
"""
from __future__ import annotations

import math
import sqlite3

import numpy as np
import pytest

from fdl_robot.core.camera import PinholeCamera
from fdl_robot.perception import sources
from fdl_robot.perception.sources import (EndOfStream, Frame, FrameSource, SourceError, VideoSource,
                                          capture_stamp_ns, depth_to_mm, guess_intrinsics,
                                          make_source, register_source)

cv2 = pytest.importorskip("cv2")

W, H = 64, 48
# RGB colours of the video frames: MJPG is lossy, so saturated and far apart.
VIDEO_COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
VIDEO_FPS = 10.0

# The synthetic recording: known intrinsics (fx, fy, cx, cy exact in float32, as
# librealsense stores them) and Brown-Conrady distortion.
BAG_CAMERA = PinholeCamera(60.5, 61.25, 31.75, 23.5, W, H, (0.1, -0.05, 0.001, 0.002, 0.01))
BAG_FPS = 30
BAG_FRAMES = 4
DEPTH_UNITS_M = 1e-4          # a D405-like depth scale: 0.1 mm per unit, to test conversion
PLANE_MM = 750


def bag_frame(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame i of the synthetic recording: rgb, raw depth (0.1 mm units), expected depth mm.

    Colour is seeded noise (any lossy step or channel swap shows); depth is a 750 mm plane
    with the frame number written in pixel (0, 0) as 100 + i mm and one hole (0).
    """
    rgb = np.random.default_rng(i).integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth_mm = np.full((H, W), PLANE_MM, np.uint16)
    depth_mm[0, 0] = 100 + i
    depth_mm[5, 7] = 0
    return rgb, (depth_mm.astype(np.uint32) * 10).astype(np.uint16), depth_mm


# --- fixtures ---------------------------------------------------------------------------

def write_video(path, colours=VIDEO_COLOURS, fps=VIDEO_FPS) -> str:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    assert writer.isOpened()
    for rgb in colours:
        writer.write(np.full((H, W, 3), rgb[::-1], np.uint8))   # OpenCV writes BGR
    writer.release()
    return str(path)


@pytest.fixture(scope="module")
def video_file(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "colours.avi")


@pytest.fixture(scope="module")
def rs():
    return pytest.importorskip("pyrealsense2", reason="pyrealsense2 comes with scripts/setup.sh")


@pytest.fixture(scope="module")
def bag_file(rs, tmp_path_factory):
    from fdl_robot.perception.realsense_bag import write_synthetic_bag

    path = tmp_path_factory.mktemp("bag") / "synthetic.db3"
    frames = [bag_frame(i)[:2] for i in range(BAG_FRAMES)]
    return write_synthetic_bag(path, frames, BAG_CAMERA, fps=BAG_FPS, depth_units_m=DEPTH_UNITS_M)


def read_all(source, n: int) -> list[Frame]:
    frames = []
    while len(frames) < n:
        frame = source.read(timeout_s=2.0)
        assert frame is not None, f"no frame after {len(frames)}"
        frames.append(frame)
    return frames


def mean_rgb(frame: Frame) -> np.ndarray:
    return frame.rgb.reshape(-1, 3).mean(axis=0)


# --- pure helpers -----------------------------------------------------------------------

def test_depth_to_mm_converts_units_and_keeps_holes():
    raw = np.array([[7500, 0], [12, 65535]], np.uint16)            # 0.1 mm units
    np.testing.assert_array_equal(depth_to_mm(raw, 1e-4), [[750, 0], [1, 6554]])
    np.testing.assert_array_equal(depth_to_mm(np.array([[3, 4]], np.uint16), 1e-4), [[0, 0]])
    mm = np.array([[750, 0]], np.uint16)
    out = depth_to_mm(mm, np.float32(0.001))                       # D400: exactly mm
    np.testing.assert_array_equal(out, mm)
    assert out.dtype == np.uint16 and out is not mm
    np.testing.assert_array_equal(depth_to_mm(np.array([[60000]], np.uint16), 0.002), [[65535]])
    for bad in (0.0, -1e-3, math.nan):
        with pytest.raises(ValueError):
            depth_to_mm(mm, bad)


def test_guessed_intrinsics_follow_the_field_of_view():
    cam = guess_intrinsics(640, 480)
    assert cam.fx == cam.fy == pytest.approx(640, rel=1e-4)             # 53.13 deg ~ fx = W
    assert (cam.cx, cam.cy, cam.width, cam.height, cam.dist) == (319.5, 239.5, 640, 480, None)
    assert guess_intrinsics(640, 480, 90.0).fx == pytest.approx(320.0)


def test_capture_stamps_on_the_ros_clock():
    now_ns, wall = 5_000_000_000, 1_700_000_000.0
    # Live: the ROS time at capture, even when the ROS clock is not the wall clock.
    assert capture_stamp_ns(wall - 0.25, True, now_ns, wall) == now_ns - 250_000_000
    assert capture_stamp_ns(wall + 1.0, True, now_ns, wall) == now_ns   # never in the future
    # Files: now, whatever the recorded time.
    assert capture_stamp_ns(0.1, False, now_ns, wall) == now_ns
    # Never backwards.
    assert capture_stamp_ns(0.1, False, now_ns, wall, last_stamp_ns=now_ns) == now_ns + 1


# --- OpenCV video -----------------------------------------------------------------------

def test_video_source_reads_rgb_frames_in_order_and_loops(video_file):
    with VideoSource(video_file, loop=True) as source:
        assert isinstance(source, FrameSource) and not source.live
        frames = read_all(source, 6)
    for k, frame in enumerate(frames):
        assert frame.index == k
        assert frame.rgb.shape == (H, W, 3) and frame.rgb.dtype == np.uint8
        assert frame.depth_mm is None
        np.testing.assert_allclose(mean_rgb(frame), VIDEO_COLOURS[k % 4], atol=8)   # RGB order
    # Recorded timing (10 fps), continued across the loop.
    np.testing.assert_allclose([f.stamp_s for f in frames], np.arange(6) / VIDEO_FPS, atol=1e-6)
    cam = frames[0].camera
    assert (cam.width, cam.height, cam.cx, cam.cy) == (W, H, 31.5, 23.5)
    assert cam.fx == cam.fy == pytest.approx(W, rel=1e-4)
    assert "guess" in source.intrinsics_note


def test_video_source_without_loop_ends(video_file):
    with VideoSource(video_file, loop=False) as source:
        assert len(read_all(source, 4)) == 4
        for _ in range(2):                        # and keeps saying so
            with pytest.raises(EndOfStream):
                source.read()


def test_video_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        VideoSource(str(tmp_path / "missing.avi"))
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"not a video")
    with pytest.raises(SourceError, match="cannot open"):
        VideoSource(str(empty))


# --- synthetic RealSense recordings -----------------------------------------------------

def test_synthetic_recording_is_a_ros2_sqlite_bag(bag_file):
    with sqlite3.connect(bag_file) as db:
        topics = {name for (name,) in db.execute("SELECT name FROM topics")}
        count = dict(db.execute("SELECT t.name, COUNT(*) FROM messages m JOIN topics t "
                                "ON m.topic_id = t.id GROUP BY t.name"))
    color = [t for t in topics if "Color_0/image/data" in t]
    depth = [t for t in topics if "Depth_0/image/data" in t]
    assert len(color) == len(depth) == 1
    assert count[color[0]] == count[depth[0]] == BAG_FRAMES


def test_realsense_playback_gives_back_frames_intrinsics_and_depth_units(bag_file):
    with sources.RealSenseSource(bag_path=bag_file, loop=False) as source:
        assert not source.live
        frames = read_all(source, BAG_FRAMES)
        with pytest.raises(EndOfStream):
            source.read()
    for i, frame in enumerate(frames):
        rgb, _raw, depth_mm = bag_frame(i)
        assert frame.index == i
        assert frame.rgb.dtype == np.uint8 and frame.rgb.shape == (H, W, 3)
        np.testing.assert_array_equal(frame.rgb, rgb)              # lossless, RGB order
        assert frame.depth_mm.dtype == np.uint16 and frame.depth_mm.shape == (H, W)
        np.testing.assert_array_equal(frame.depth_mm, depth_mm)    # 0.1 mm units -> mm
        assert frame.depth_mm[20, 30] == PLANE_MM and frame.depth_mm[5, 7] == 0
        assert frame.stamp_s == pytest.approx(i / BAG_FPS, abs=1e-6)
    cam = frames[0].camera
    assert (cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height) == (60.5, 61.25, 31.75, 23.5, W, H)
    np.testing.assert_allclose(cam.dist, BAG_CAMERA.dist, rtol=1e-6)   # stored as float32


def test_realsense_playback_loops_with_increasing_stamps(bag_file):
    with sources.RealSenseSource(bag_path=bag_file, loop=True) as source:
        frames = read_all(source, BAG_FRAMES + 3)
    assert [int(f.depth_mm[0, 0]) - 100 for f in frames] == [0, 1, 2, 3, 0, 1, 2]
    np.testing.assert_array_equal(frames[4].rgb, bag_frame(0)[0])
    stamps = [f.stamp_s for f in frames]
    np.testing.assert_allclose(stamps, np.arange(len(frames)) / BAG_FPS, atol=1e-6)


def test_realsense_playback_aligns_lower_resolution_depth(rs, tmp_path):
    """Depth at half resolution (its own intrinsics) comes back registered to colour."""
    from fdl_robot.perception.realsense_bag import write_synthetic_bag

    color_cam = PinholeCamera(60.0, 60.0, 31.5, 23.5, W, H)
    depth_cam = PinholeCamera(30.0, 30.0, 15.5, 11.5, W // 2, H // 2)
    frames = [(np.full((H, W, 3), 40 * i, np.uint8), np.full((H // 2, W // 2), 750 + i, np.uint16))
              for i in range(3)]
    path = write_synthetic_bag(tmp_path / "half.db3", frames, color_cam, fps=BAG_FPS,
                               depth_intrinsics=depth_cam)
    with sources.RealSenseSource(bag_path=path, loop=False) as source:
        out = read_all(source, 3)
    for i, frame in enumerate(out):
        assert frame.depth_mm.shape == (H, W)                       # colour geometry
        valid = frame.depth_mm[frame.depth_mm > 0]
        assert valid.size > 0.95 * W * H
        assert set(np.unique(valid)) == {750 + i}
        assert frame.camera == color_cam
        np.testing.assert_array_equal(frame.rgb, frames[i][0])


def test_synthetic_bag_checks_its_input(rs, tmp_path):
    from fdl_robot.perception.realsense_bag import write_synthetic_bag

    good = [bag_frame(0)[:2]]
    with pytest.raises(ValueError, match="db3"):                 # pyrealsense2 2.59 writes .db3
        write_synthetic_bag(tmp_path / "old.bag", good, BAG_CAMERA)
    with pytest.raises(ValueError, match="rgb"):
        write_synthetic_bag(tmp_path / "x.db3", [(good[0][0][:10], good[0][1])], BAG_CAMERA,
                            realtime=False)
    with pytest.raises(ValueError, match="width and height"):
        write_synthetic_bag(tmp_path / "y.db3", good, PinholeCamera(60, 60, 32, 24))


def test_realsense_source_errors(rs, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        sources.RealSenseSource(bag_path=str(tmp_path / "missing.db3"))
    junk = tmp_path / "junk.db3"
    junk.write_bytes(b"no sqlite here")
    with pytest.raises(SourceError, match="cannot play"):
        sources.RealSenseSource(bag_path=str(junk))
    if len(rs.context().query_devices()):
        pytest.skip("a RealSense camera is connected")
    with pytest.raises(SourceError, match="no RealSense device found"):
        sources.RealSenseSource()


# --- the registry -----------------------------------------------------------------------

def test_make_source_builds_sources_by_name(video_file, monkeypatch):
    source = make_source({"source": "video", "video_uri": video_file, "loop": False})
    try:
        assert isinstance(source, VideoSource)
    finally:
        source.close()
    with pytest.raises(SourceError, match="sim_node"):
        make_source({"source": "sim"})
    with pytest.raises(SourceError, match="available"):
        make_source({"source": "kinect"})

    monkeypatch.setattr(sources, "_FACTORIES", dict(sources._FACTORIES))
    made = []
    register_source("sim", lambda params: made.append(params) or "a sim source")
    assert make_source({"source": "sim", "fps": 30.0}) == "a sim source"
    assert made == [{"source": "sim", "fps": 30.0}]
    assert "sim" in sources.available_sources()

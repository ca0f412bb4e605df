"""The auto-labelled detection dataset: boxes from geometry agree with what is rendered."""
from __future__ import annotations

import numpy as np
import pytest

from fdl_robot.sim.detection_dataset import (CLASS_NAMES, episode_frames, label_objects, object_class,
                                             write_yolo_dataset)
from fdl_robot.sim.env import PickPlaceConfig, PickPlaceEnv
from fdl_robot.sim.expert import ScriptedExpert


@pytest.fixture(scope="module")
def env():
    e = PickPlaceEnv(PickPlaceConfig(image_width=640, image_height=480))
    yield e
    e.close()


def test_classes():
    assert CLASS_NAMES == ("red_cube", "cube", "bin")
    assert [object_class(n) for n in ("red_cube", "distractor_0", "distractor_2", "bin")] == [0, 1, 1, 2]
    with pytest.raises(KeyError):
        object_class("marker")


def test_visible_boxes_enclose_the_rendered_pixels(env):
    """For a fully visible object the geometric box and the segmentation's box agree to 1 px."""
    n = 0
    for seed in (31, 32, 33):
        env.reset(seed)
        seg = env.render_segmentation()
        labels = label_objects(env, seg)
        names = {lb.name for lb in labels}
        assert "red_cube" in names and "bin" in names          # start of an episode: all in view
        for lb in labels:
            rows, cols = np.nonzero(seg == env.segmentation_labels[lb.name])
            seen = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], float)
            if lb.visibility >= 0.97:
                assert np.abs(lb.box_xyxy - seen).max() <= 1.0, (lb.name, lb.box_xyxy, seen)
                n += 1
            else:        # clipped to what can be seen
                assert np.all(lb.box_xyxy[:2] >= seen[:2] - 1e-9) and np.all(lb.box_xyxy[2:] <= seen[2:] + 1e-9)
            assert 0.0 < lb.depth_m < 2.0
            np.testing.assert_allclose(lb.p_base_m, env.object_pose(lb.name).position_m)
    assert n >= 6


def test_hidden_object_gets_no_label(env):
    env.reset(34)
    env.set_object_pose("distractor_0", [3.0, 3.0, -1.0])      # under the floor, out of view
    labels = label_objects(env, env.render_segmentation())
    assert "distractor_0" not in {lb.name for lb in labels}


def test_frames_are_deterministic_and_cover_the_episode(env):
    expert = ScriptedExpert(env.model)
    a = list(episode_frames(env, expert, 40, 3))
    b = list(episode_frames(env, expert, 40, 3))
    assert [f.step for f in a] == [f.step for f in b] and len(set(f.step for f in a)) == 3
    for fa, fb in zip(a, b, strict=True):
        np.testing.assert_array_equal(fa.rgb, fb.rgb)
        assert [lb.name for lb in fa.labels] == [lb.name for lb in fb.labels]


def test_yolo_files(tmp_path):
    yaml_path = write_yolo_dataset(tmp_path, n_train_episodes=1, n_val_episodes=1, frames_per_episode=2,
                                   image_width=320, image_height=240, progress=False)
    text = yaml_path.read_text()
    assert "train: images/train" in text and "2: bin" in text
    for split in ("train", "val"):
        images = sorted((tmp_path / "images" / split).glob("*.jpg"))
        assert len(images) == 2
        for img in images:
            lines = (tmp_path / "labels" / split / (img.stem + ".txt")).read_text().split("\n")[:-1]
            assert lines
            values = np.array([[float(x) for x in line.split()] for line in lines])
            assert values.shape[1] == 5 and set(values[:, 0].astype(int)) <= {0, 1, 2}
            assert np.all((values[:, 1:] > 0) & (values[:, 1:] <= 1))


def test_wrist_camera_labels_and_frames(env, tmp_path):
    """Labels of the wrist camera's view agree with its segmentation; frames come per camera."""
    n = 0
    for seed in (31, 32, 33, 34, 35, 36):
        env.reset(seed)
        seg = env.render_segmentation("wrist_cam")
        for lb in label_objects(env, seg, camera="wrist_cam"):
            rows, cols = np.nonzero(seg == env.segmentation_labels[lb.name])
            seen = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], float)
            if lb.visibility >= 0.97 and lb.name != "bin":    # (hollow: its hull is an upper bound)
                # (cut by the image border: slivers rasterise within 1.5 px)
                cut = lb.box_xyxy[0] <= 0 or lb.box_xyxy[1] <= 0 or lb.box_xyxy[2] >= 640 or lb.box_xyxy[3] >= 480
                assert np.abs(lb.box_xyxy - seen).max() <= (1.5 if cut else 1.0), (seed, lb.name, lb.box_xyxy, seen)
                n += 1
            assert 0.05 < lb.depth_m < 1.0
    assert n >= 2
    expert = ScriptedExpert(env.model)
    frames = list(episode_frames(env, expert, 40, 2, cameras=("scene_cam", "wrist_cam")))
    assert [f.camera_name for f in frames] == ["scene_cam", "wrist_cam"] * 2
    assert frames[0].step == frames[1].step and frames[1].camera.fy != frames[0].camera.fy
    assert not np.allclose(frames[1].T_base_cam.translation, frames[0].T_base_cam.translation)
    yaml_path = write_yolo_dataset(tmp_path, n_train_episodes=1, n_val_episodes=1, frames_per_episode=1,
                                   image_width=320, image_height=240, progress=False,
                                   cameras=("scene_cam", "wrist_cam"))
    names = sorted(p.name for p in (yaml_path.parent / "images" / "train").glob("*.jpg"))
    assert len(names) == 2 and names[0].endswith("_wrist.jpg") != names[1].endswith("_wrist.jpg")


def test_in_image_fraction_of_an_object_cut_by_the_border(env):
    env.reset(31)
    labels = {lb.name: lb for lb in label_objects(env, env.render_segmentation("wrist_cam"), camera="wrist_cam")}
    cut = labels["red_cube"]                     # at the bottom border of the wrist view at this seed
    assert cut.box_xyxy[3] == 480 and 0.05 < cut.in_image < 0.5
    env.reset(31)
    assert all(lb.in_image == pytest.approx(1.0) for lb in label_objects(env, env.render_segmentation()))

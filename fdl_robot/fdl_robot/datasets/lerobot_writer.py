"""LeRobotDataset v3.0 through LeRobot's own API; runs in the LeRobot venv (numpy + lerobot only).

    .venv-lerobot/bin/python -m fdl_robot.datasets.lerobot_writer write ARRAYS_DIR ROOT
    .venv-lerobot/bin/python -m fdl_robot.datasets.lerobot_writer summary ROOT [--repo-id ID]

``fdl-robot-bags-to-dataset --format lerobot`` (:mod:`fdl_robot.datasets.bags_to_dataset`, main
venv) reads the bags and calls ``write`` with a directory of ``episode_<i>.npz`` (one array per
feature, (T, ...)) and ``spec.json`` (repo_id, fps, task, robot_type, feature names, video). This
module then does what LeRobot's recorders do: ``LeRobotDataset.create(repo_id, fps, features,
root, use_videos)``, per row ``add_frame({feature: float32 row, "task": task})``, per episode
``save_episode()``, and at the end ``finalize()`` (it closes the parquet writers; without it the
parquet files have no footer and the dataset does not load). It prints one JSON line: the summary.

``summary`` loads a dataset with ``LeRobotDataset(repo_id, root=ROOT)`` (offline) and prints one
JSON line: episodes, frames, fps, feature shapes and the first and last frame's values.

Imports nothing of fdl_robot beyond this file and nothing of ROS: the LeRobot venv has neither.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

__all__ = ["features_of", "write", "summary", "main"]


def features_of(spec: dict, first: dict[str, np.ndarray]) -> dict:
    """LeRobot feature descriptions: float32 vectors with their names, images as video (H, W, 3)."""
    features = {key: {"dtype": "float32", "shape": (len(names),), "names": list(names)}
                for key, names in spec["features"].items()}
    for key, frames in first.items():
        if key.startswith("observation.images."):
            features[key] = {"dtype": "video", "shape": tuple(frames.shape[1:]),
                             "names": ["height", "width", "channels"]}
    return features


def write(arrays_dir: Path, root: Path) -> dict:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    spec = json.loads((arrays_dir / "spec.json").read_text())
    episodes = [dict(np.load(arrays_dir / name)) for name in spec["episodes"]]
    features = features_of(spec, episodes[0])
    videos = any(f["dtype"] == "video" for f in features.values())
    dataset = LeRobotDataset.create(spec["repo_id"], fps=int(spec["fps"]), features=features, root=root,
                                    robot_type=spec.get("robot_type"), use_videos=videos)
    try:
        for arrays in episodes:
            n = len(arrays["action"])
            for t in range(n):
                frame = {key: (value[t] if features[key]["dtype"] == "video" else value[t].astype(np.float32))
                         for key, value in arrays.items()}
                dataset.add_frame({**frame, "task": spec["task"]})
            dataset.save_episode(parallel_encoding=False)
    finally:
        dataset.finalize()
    return {"root": str(root), "episodes": dataset.meta.total_episodes, "frames": dataset.meta.total_frames,
            "fps": dataset.meta.fps}


def summary(root: Path, repo_id: str) -> dict:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    # pyav decodes the videos: torchcodec, LeRobot's default, needs FFmpeg's shared libraries installed
    dataset = LeRobotDataset(repo_id, root=root, video_backend="pyav")
    first, last = dataset[0], dataset[len(dataset) - 1]
    vectors = [k for k, f in dataset.features.items() if f["dtype"] == "float32"]
    videos = [k for k, f in dataset.features.items() if f["dtype"] == "video"]
    return {"episodes": dataset.num_episodes, "frames": dataset.num_frames, "fps": dataset.fps,
            "shapes": {k: list(f["shape"]) for k, f in dataset.features.items()},
            "names": {k: dataset.features[k].get("names") for k in vectors},
            "first": {k: first[k].tolist() for k in vectors}, "last": {k: last[k].tolist() for k in vectors},
            "first_image_mean": {k: float(first[k].mean()) for k in videos},     # decoded, 0..1, (C, H, W)
            "image_shapes": {k: list(first[k].shape) for k in videos},
            "last_episode_index": int(last["episode_index"]), "last_frame_index": int(last["frame_index"]),
            "codebase_version": dataset.meta.info.get("codebase_version")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fdl_robot.datasets.lerobot_writer", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write", help="write a LeRobotDataset from arrays (spec.json + episode_<i>.npz)")
    w.add_argument("arrays", type=Path)
    w.add_argument("root", type=Path)
    s = sub.add_parser("summary", help="load a LeRobotDataset and print what it holds")
    s.add_argument("root", type=Path)
    s.add_argument("--repo-id", default="fdl_robot/demos")
    args = p.parse_args(argv)
    result = write(args.arrays, args.root) if args.command == "write" else summary(args.root, args.repo_id)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train the shipped sim detector: render an auto-labelled dataset, train YOLO from its yaml.

    fdl-robot-train-detector                       # dataset + training + ONNX + metrics
    fdl-robot-train-detector --hours 0.75 --imgsz 320 --model yolo11n.yaml
    fdl-robot-train-detector --model fdl_robot/fdl_robot/models/detector/best.pt --hours 0.8
                                                   # fine-tune the shipped weights
    fdl-robot-train-detector ... --ship            # and replace them with the result
    fdl-robot-train-detector --cameras scene,wrist --dataset outputs/detection_dataset_wrist ...
                                                   # scene and wrist-camera frames of the same moments

No pretrained weights exist on these machines, so the network starts from random
initialisation (``pretrained=False``) and learns from the simulator alone; with a ``.pt``
as ``--model`` training continues from those weights (our own earlier run) instead. ultralytics
runs the training loop (mosaic, HSV/scale/flip augmentation, cosine-free linear LR
decay fitted to the time budget by ``time=``); the dataset comes from
:mod:`fdl_robot.sim.detection_dataset`. The best checkpoint (by ultralytics' fitness,
0.1 mAP50 + 0.9 mAP50-95 on the validation split) is copied to ``--out/best.pt`` (a run
directory, ``outputs/detector/train`` by default), exported to ``best.onnx``, evaluated with
:mod:`fdl_robot.eval.detector` (``metrics.json``, ``metrics.png``), and the command, wall time
and settings are written next to it (``training.json``). The shipped weights
(``fdl_robot/models/detector``) are replaced only with ``--ship``: once the run and its
evaluation have succeeded, its files (:data:`SHIPPED_FILES`) are copied there
(``MODEL_CARD.md`` is kept by hand). Every output is checked before any work.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

from fdl_robot.cli_format import HelpFormatter
from fdl_robot.outputs import DIRECTORY, OutputError, check, check_args, copy_into, exit_on_error, write_json, writing
from fdl_robot.perception.detector import SHIPPED_DETECTORS, default_model_dir

__all__ = ["DEFAULT_OUT", "SHIPPED_FILES", "main", "train"]

#: The run directory of ``--out`` by default: never the shipped model (``--ship`` copies there).
DEFAULT_OUT = Path("outputs/detector/train")
#: ultralytics' own run directories (``project=``): epochs' weights, plots, results.csv.
RUNS_DIR = Path("outputs/detector_runs")
#: The files of a run that ``--ship`` copies into the shipped model directory.
SHIPPED_FILES = ("best.pt", "best.onnx", "training.json", "metrics.json", "metrics.png", "train_results.png",
                 "train_confusion_matrix_normalized.png", "train_BoxPR_curve.png", "train_PR_curve.png")


def train(data_yaml: Path, out_dir: Path, *, model: str = "yolo11n.yaml", imgsz: int = 320,
          hours: float = 0.75, epochs: int = 100, batch: int = 16, workers: int = 2, seed: int = 0,
          lr0: float = 0.01, warmup_epochs: float = 3.0, optimizer: str = "auto",
          run_dir: Path = RUNS_DIR, name: str = "yolo") -> dict:
    """Train from scratch (a yaml) or fine-tune (a .pt); copy best.pt to ``out_dir``; return a summary."""
    from ultralytics import YOLO

    t0 = time.time()
    # ultralytics builds the network from the architecture and loads a .pt's weights only
    # when pretrained is not False (with pretrained=False a .pt silently trains from scratch).
    fine_tune = str(model).endswith(".pt")
    yolo = YOLO(model, task="detect")
    yolo.train(data=str(data_yaml), imgsz=imgsz, epochs=epochs, time=hours, batch=batch, device="cpu",
               workers=workers, pretrained=fine_tune, amp=False, seed=seed, deterministic=True,
               project=str(run_dir.resolve()), name=name, exist_ok=True, cache="ram", plots=True,
               patience=1000, verbose=True, lr0=lr0, warmup_epochs=warmup_epochs,
               optimizer=optimizer)
    wall_s = time.time() - t0
    save_dir = Path(yolo.trainer.save_dir)
    with writing(out_dir / "best.pt", "weights"):
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(save_dir / "weights" / "best.pt", out_dir / "best.pt")
    for plot in ("results.png", "confusion_matrix_normalized.png", "BoxPR_curve.png", "PR_curve.png"):
        if (save_dir / plot).exists():
            with writing(out_dir / f"train_{plot}", "training plot"):
                shutil.copy(save_dir / plot, out_dir / f"train_{plot}")
    results_csv = (save_dir / "results.csv").read_text() if (save_dir / "results.csv").exists() else ""
    epochs_done = max(0, len(results_csv.strip().splitlines()) - 1)
    return {"model": model, "imgsz": imgsz, "hours_budget": hours, "epochs_run": epochs_done, "batch": batch,
            "lr0": lr0, "warmup_epochs": warmup_epochs, "optimizer": optimizer, "fine_tune": fine_tune,
            "seed": seed, "wall_time_s": round(wall_s, 1), "run_dir": str(save_dir),
            "torch_threads": __import__("torch").get_num_threads()}


def export_onnx(weights: Path, imgsz: int) -> Path:
    """ONNX export through ultralytics (opset default, static shape imgsz x imgsz, no NMS)."""
    from ultralytics import YOLO

    onnx_path = Path(YOLO(str(weights), task="detect").export(format="onnx", imgsz=imgsz, simplify=False,
                                                              dynamic=False, nms=False))
    return onnx_path


@exit_on_error
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--dataset", type=Path, default=Path("outputs/detection_dataset"),
                   help="dataset directory (rendered first if it has no dataset.yaml)")
    p.add_argument("--train-episodes", type=int, default=250, help="episodes rendered for training")
    p.add_argument("--val-episodes", type=int, default=60, help="episodes rendered for validation")
    p.add_argument("--frames-per-episode", type=int, default=4)
    p.add_argument("--cameras", default="scene",
                   help="cameras whose frames a rendered dataset holds, comma-separated: scene, wrist")
    p.add_argument("--model", default="yolo11n.yaml",
                   help="ultralytics model yaml (trained from scratch) or a .pt of ours to fine-tune")
    p.add_argument("--imgsz", type=int, default=320, help="training and export size, pixels")
    p.add_argument("--hours", type=float, default=0.75, help="training time budget (ultralytics time=)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--optimizer", default="auto",
                   help="ultralytics optimizer; 'auto' picks AdamW or SGD itself and IGNORES --lr0 "
                        "(give e.g. AdamW for a low-LR fine-tune; keep a warmup: a fresh AdamW state "
                        "at full LR wrecks trained weights in the first epoch)")
    p.add_argument("--lr0", type=float, default=0.01,
                   help="initial learning rate (ultralytics lr0; used only with an explicit --optimizer)")
    p.add_argument("--warmup-epochs", type=float, default=3.0, help="ultralytics warmup_epochs")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="run directory: best.pt, best.onnx, training.json, metrics.json")
    p.add_argument("--ship", action="store_true",
                   help="after the run and its evaluation, copy its weights and metrics over the shipped ones "
                        "(the --ship-as model); also needed for an --out inside it")
    p.add_argument("--ship-as", default="detector", choices=SHIPPED_DETECTORS,
                   help="which shipped detector --ship replaces (fdl_robot/models/<NAME>; detector_node's "
                        "shipped_model)")
    p.add_argument("--skip-eval", action="store_true", help="do not run the held-out evaluation")
    args = p.parse_args(argv)
    _check_outputs(p, args)
    from fdl_robot.sim.scene import CAMERAS

    try:
        cameras = tuple(CAMERAS[name.strip()] for name in args.cameras.split(","))
    except KeyError as exc:
        p.error(f"--cameras: unknown camera {exc}; choose from {', '.join(CAMERAS)}")

    yaml_path = args.dataset / "dataset.yaml"
    if not yaml_path.exists():
        from fdl_robot.sim.detection_dataset import write_yolo_dataset

        t0 = time.time()
        write_yolo_dataset(args.dataset, args.train_episodes, args.val_episodes, args.frames_per_episode,
                           cameras=cameras)
        print(f"dataset rendered in {time.time() - t0:.0f} s: {yaml_path}")
    summary = train(yaml_path, args.out, model=args.model, imgsz=args.imgsz, hours=args.hours,
                    batch=args.batch, workers=args.workers, lr0=args.lr0, warmup_epochs=args.warmup_epochs,
                    optimizer=args.optimizer)
    summary["command"] = "fdl-robot-train-detector " + " ".join(argv if argv is not None else sys.argv[1:])
    summary["dataset"] = json.loads((args.dataset / "info.json").read_text())
    onnx_path = export_onnx(args.out / "best.pt", args.imgsz)
    summary["onnx"] = onnx_path.name
    write_json(args.out / "training.json", summary, "training summary")
    print(json.dumps({k: v for k, v in summary.items() if k != "dataset"}, indent=2))
    code = 0
    if not args.skip_eval:
        from fdl_robot.eval.detector import main as evaluate_main

        code = evaluate_main(["--weights", str(args.out / "best.pt"), "--dataset", str(args.dataset),
                              "--imgsz", str(args.imgsz), "--json", str(args.out / "metrics.json")])
    if args.ship and code == 0:
        shipped = copy_into(default_model_dir(args.ship_as), [args.out / name for name in SHIPPED_FILES],
                            "shipped file")
        print(f"shipped into {default_model_dir(args.ship_as)}: {', '.join(shipped)}")
    return code


def _check_outputs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every directory the run will write, before any work (parser.error on the first that fails)."""
    if args.ship and args.skip_eval:
        parser.error("--ship needs the evaluation (the shipped metrics.json must describe the shipped weights); "
                     "drop --skip-eval")
    rendered = not (args.dataset / "dataset.yaml").exists()
    check_args(parser, args, {"--out": DIRECTORY, **({"--dataset": DIRECTORY} if rendered else {})},
               shipped_ok=args.ship)
    try:
        check(RUNS_DIR, DIRECTORY, "(ultralytics runs)")
        if args.ship:
            check(default_model_dir(args.ship_as), DIRECTORY, "--ship", shipped_ok=True)
    except OutputError as exc:
        parser.error(str(exc))


if __name__ == "__main__":
    raise SystemExit(main())

"""Train the shipped sim detectors: render an auto-labelled dataset, train YOLO or RT-DETR.

    fdl-robot-train-detector                       # dataset + training + ONNX + metrics
    fdl-robot-train-detector --hours 0.75 --imgsz 320 --model yolo11n.yaml
    fdl-robot-train-detector --model fdl_robot/fdl_robot/models/detector/best.pt --hours 0.8
                                                   # fine-tune the shipped weights
    fdl-robot-train-detector ... --ship            # and replace them with the result
    fdl-robot-train-detector --cameras scene,wrist --dataset outputs/detection_dataset_wrist ...
                                                   # scene and wrist-camera frames of the same moments
    fdl-robot-train-detector --family detr ...     # the DETR family: our RT-DETR (rtdetr_yolo11n.yaml),
                                                   # its backbone and neck from the shipped YOLO
    fdl-robot-train-detector --family detr --resume   # continue an interrupted run from its last.pt

``--family detr`` trains the RT-DETR of :data:`DETR_SPEC` (the YOLO11n backbone and neck with
ultralytics' ``RTDETRDecoder``; :func:`compose_detr_yaml`) through ultralytics' ``RTDETR``,
layers 0-22 initialised from ``--init-weights`` (the shipped YOLO11n by default), with the
same dataset, options and outputs as YOLO; ``--ship`` then replaces ``models/detector_detr``.
Its defaults (optimizer, learning rate, warm-up, run directory) are :data:`FAMILY_DEFAULTS`'.

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
from fdl_robot.perception.detector import FAMILIES, SHIPPED_DETECTORS, default_model_dir

__all__ = ["DETR_SPEC", "FAMILY_DEFAULTS", "SHIPPED_FILES", "compose_detr_yaml", "main", "train"]

#: Our RT-DETR: the parts file :func:`compose_detr_yaml` turns into an ultralytics model yaml.
DETR_SPEC = Path(__file__).with_name("rtdetr_yolo11n.yaml")
#: Per family: the model trained by default, the run directory of ``--out`` (never the shipped
#: model: ``--ship`` copies there), ultralytics' run name under RUNS_DIR, the optimizer, initial
#: learning rate, warm-up epochs and warm-up learning rate of the biases (ultralytics'
#: ``warmup_bias_lr``), and the weights the DETR's backbone and neck start from. YOLO keeps
#: ultralytics' own defaults. RT-DETR follows its paper (AdamW, 1e-4 scale; ultralytics' SGD
#: recipe and a 0.1 bias rate are YOLO's), a little higher for the new decoder; its backbone and
#: neck come from our trained YOLO11n.
FAMILY_DEFAULTS = {
    "yolo": {"model": "yolo11n.yaml", "out": Path("outputs/detector/train"), "run_name": "yolo",
             "optimizer": "auto", "lr0": 0.01, "warmup_epochs": 3.0, "warmup_bias_lr": 0.1, "init_weights": ""},
    "detr": {"model": str(DETR_SPEC), "out": Path("outputs/detector_detr/train"), "run_name": "detr",
             "optimizer": "AdamW", "lr0": 2e-4, "warmup_epochs": 1.0, "warmup_bias_lr": 0.0,
             "init_weights": str(default_model_dir("detector") / "best.pt")},
}
#: ultralytics' own run directories (``project=``): epochs' weights, plots, results.csv.
RUNS_DIR = Path("outputs/detector_runs")
#: The files of a run that ``--ship`` copies into the shipped model directory.
SHIPPED_FILES = ("best.pt", "best.onnx", "training.json", "metrics.json", "metrics.png", "train_results.png",
                 "train_confusion_matrix_normalized.png", "train_BoxPR_curve.png", "train_PR_curve.png")


def compose_detr_yaml(spec: str | Path, out_path: str | Path) -> Path:
    """Write the ultralytics model yaml of a DETR parts file (:data:`DETR_SPEC`) to ``out_path``.

    Layers 0 to N-2 are those of the spec's ``base`` architecture as the installed ultralytics
    defines it (``yolo11n.yaml``: backbone and neck, the same indices, so a YOLO checkpoint of
    that architecture initialises them); the last layer, YOLO's ``Detect`` on P3/P4/P5, becomes
    ``RTDETRDecoder`` on the same three inputs with the spec's ``decoder`` settings. The class
    count comes from the dataset at training time. Returns ``out_path``.
    """
    import yaml
    from ultralytics.nn.tasks import yaml_model_load

    parts = yaml.safe_load(Path(spec).read_text())
    base = yaml_model_load(parts["base"])
    d = parts["decoder"]
    inputs = base["head"][-1][0]
    model = {"nc": base["nc"], "scales": {base["scale"]: base["scales"][base["scale"]]},
             "backbone": base["backbone"],
             "head": [*base["head"][:-1],
                      [inputs, 1, "RTDETRDecoder", ["nc", d["hidden_dim"], d["queries"], d["points"], d["heads"],
                                                    d["layers"], d["ffn_dim"]]]]}
    out = Path(out_path)
    with writing(out, "model yaml"):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"# built by fdl_robot.perception.train_detector.compose_detr_yaml from {Path(spec).name} "
                       f"and ultralytics' {parts['base']}\n"
                       + yaml.safe_dump(model, sort_keys=False, default_flow_style=None))
    return out


def transferred_layers(model_yaml: str | Path, weights: str | Path, nc: int) -> dict:
    """Which tensors of ``weights`` initialise the model of ``model_yaml`` (same name and shape,
    as ultralytics' ``load`` matches them): counts and the layer indices covered."""
    from ultralytics.nn.tasks import RTDETRDetectionModel, load_checkpoint

    target = RTDETRDetectionModel(str(model_yaml), nc=nc, verbose=False).state_dict()
    source = load_checkpoint(str(weights))[0].float().state_dict()
    shared = [k for k, v in source.items() if k in target and target[k].shape == v.shape]
    layers = sorted({int(k.split(".")[1]) for k in shared})
    return {"weights": str(weights), "tensors": len(shared), "of_model": len(target), "of_weights": len(source),
            "layers": [layers[0], layers[-1]] if layers else [], "layer_count": len(layers)}


def train(data_yaml: Path, out_dir: Path, *, family: str = "yolo", model: str | None = None, imgsz: int = 320,
          hours: float = 0.75, epochs: int = 100, batch: int = 16, workers: int = 2, seed: int = 0,
          lr0: float | None = None, warmup_epochs: float | None = None, optimizer: str | None = None,
          init_weights: str | None = None, freeze: int = 0, resume: bool = False,
          run_dir: Path = RUNS_DIR) -> dict:
    """Train from scratch (a yaml) or fine-tune (a .pt); copy best.pt to ``out_dir``; return a summary.

    ``family`` 'yolo' or 'detr'; None settings take :data:`FAMILY_DEFAULTS`. A DETR parts
    file as ``model`` is composed (:func:`compose_detr_yaml`) into ``out_dir`` and its backbone
    and neck initialised from ``init_weights`` ('' = random). ``freeze`` > 0 keeps the first
    ``freeze`` layers' weights fixed (ultralytics ``freeze``; 23 = the DETR's whole YOLO11n backbone
    and neck, so only its decoder learns and each step costs less). ``resume`` continues the run
    directory's ``last.pt`` with its own settings (ultralytics ``resume=True``).
    """
    import ultralytics

    defaults = FAMILY_DEFAULTS[family]
    model = defaults["model"] if model is None else str(model)
    lr0 = defaults["lr0"] if lr0 is None else lr0
    warmup_epochs = defaults["warmup_epochs"] if warmup_epochs is None else warmup_epochs
    optimizer = defaults["optimizer"] if optimizer is None else optimizer
    init_weights = defaults["init_weights"] if init_weights is None else init_weights
    t0 = time.time()
    name = defaults["run_name"]
    extra = {}
    if resume:
        last = run_dir / name / "weights" / "last.pt"
        if not last.is_file():
            raise OutputError(f"--resume: no {last} to continue")
        net = ultralytics.RTDETR(str(last)) if family == "detr" else ultralytics.YOLO(str(last), task="detect")
        net.train(resume=True, workers=workers)
        args = net.trainer.args             # the interrupted run's settings
        imgsz, hours, batch, lr0, warmup_epochs, optimizer, seed = (
            args.imgsz, args.time, args.batch, args.lr0, args.warmup_epochs, args.optimizer, args.seed)
    else:
        # ultralytics builds the network from the architecture and loads a .pt's weights only
        # when pretrained is not False (with pretrained=False a .pt silently trains from scratch).
        fine_tune = model.endswith(".pt")
        pretrained: bool | str = fine_tune
        if family == "detr" and not fine_tune:
            model = str(compose_detr_yaml(model, out_dir / Path(model).name))
            if init_weights:
                import yaml

                nc = len(yaml.safe_load(Path(data_yaml).read_text())["names"])
                extra["init_transfer"] = transferred_layers(model, init_weights, nc)
                pretrained = str(init_weights)
        net = ultralytics.RTDETR(model) if family == "detr" else ultralytics.YOLO(model, task="detect")
        net.train(data=str(data_yaml), imgsz=imgsz, epochs=epochs, time=hours, batch=batch, device="cpu",
                  workers=workers, pretrained=pretrained, amp=False, seed=seed, deterministic=True,
                  project=str(run_dir.resolve()), name=name, exist_ok=True, cache="ram", plots=True,
                  patience=1000, verbose=True, lr0=lr0, warmup_epochs=warmup_epochs,
                  warmup_bias_lr=defaults["warmup_bias_lr"], optimizer=optimizer, freeze=freeze or None)
    wall_s = time.time() - t0
    save_dir = Path(net.trainer.save_dir)
    with writing(out_dir / "best.pt", "weights"):
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(save_dir / "weights" / "best.pt", out_dir / "best.pt")
    for plot in ("results.png", "confusion_matrix_normalized.png", "BoxPR_curve.png", "PR_curve.png"):
        if (save_dir / plot).exists():
            with writing(out_dir / f"train_{plot}", "training plot"):
                shutil.copy(save_dir / plot, out_dir / f"train_{plot}")
    results_csv = (save_dir / "results.csv").read_text() if (save_dir / "results.csv").exists() else ""
    epochs_done = max(0, len(results_csv.strip().splitlines()) - 1)
    return {"family": family, "model": model, "imgsz": imgsz, "hours_budget": hours, "epochs_run": epochs_done,
            "batch": batch, "lr0": lr0, "warmup_epochs": warmup_epochs, "optimizer": optimizer,
            "fine_tune": model.endswith(".pt"), **extra, "frozen_layers": freeze, "resumed": resume, "seed": seed,
            "wall_time_s": round(wall_s, 1), "run_dir": str(save_dir),
            "torch_threads": __import__("torch").get_num_threads()}


def export_onnx(weights: Path, imgsz: int, family: str = "yolo") -> Path:
    """ONNX export through ultralytics (opset default, static shape imgsz x imgsz, no NMS)."""
    import ultralytics

    net = (ultralytics.RTDETR(str(weights)) if family == "detr"
           else ultralytics.YOLO(str(weights), task="detect"))
    return Path(net.export(format="onnx", imgsz=imgsz, simplify=False, dynamic=False, nms=False))


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
    p.add_argument("--family", choices=FAMILIES, default="yolo",
                   help="detector family: YOLO11n, or our RT-DETR (DETR family: the detr backend)")
    p.add_argument("--model", default=None,
                   help="ultralytics model yaml (trained from scratch), a DETR parts file like "
                        "perception/rtdetr_yolo11n.yaml, or a .pt of ours to fine-tune "
                        "(default: yolo11n.yaml; the package's rtdetr_yolo11n.yaml for --family detr)")
    p.add_argument("--init-weights", default=None,
                   help="--family detr from a yaml: weights whose matching layers (backbone and neck) "
                        "initialise it (default: the shipped YOLO11n, models/detector/best.pt; '' = random)")
    p.add_argument("--resume", action="store_true",
                   help="continue the family's interrupted run from its last.pt (its own settings and "
                        "time budget; the dataset must be where it was)")
    p.add_argument("--imgsz", type=int, default=320, help="training and export size, pixels")
    p.add_argument("--hours", type=float, default=0.75, help="training time budget (ultralytics time=)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--optimizer", default=None,
                   help="ultralytics optimizer (default: 'auto' for YOLO, AdamW for DETR); 'auto' picks "
                        "AdamW or SGD itself and IGNORES --lr0 (give e.g. AdamW for a low-LR fine-tune; "
                        "keep a warmup: a fresh AdamW state at full LR wrecks trained weights in the first epoch)")
    p.add_argument("--lr0", type=float, default=None,
                   help="initial learning rate (ultralytics lr0; used only with an explicit optimizer; "
                        "default 0.01 for YOLO, 2e-4 for DETR)")
    p.add_argument("--warmup-epochs", type=float, default=None,
                   help="ultralytics warmup_epochs (default 3 for YOLO, 1 for DETR)")
    p.add_argument("--freeze", type=int, default=0,
                   help="keep the first N layers fixed (ultralytics freeze; 23 = the DETR's YOLO11n backbone "
                        "and neck: only the decoder trains, each step ~1.7x cheaper on this CPU)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=None,
                   help="run directory: best.pt, best.onnx, training.json, metrics.json "
                        "(default outputs/detector/train; outputs/detector_detr/train for --family detr)")
    p.add_argument("--ship", action="store_true",
                   help="after the run and its evaluation, copy its weights and metrics over the shipped ones "
                        "(the --ship-as model); also needed for an --out inside it")
    p.add_argument("--ship-as", default="detector", choices=SHIPPED_DETECTORS,
                   help="which shipped detector --ship replaces (fdl_robot/models/<NAME>, <NAME>_detr for "
                        "--family detr; detector_node's shipped_model)")
    p.add_argument("--skip-eval", action="store_true", help="do not run the held-out evaluation")
    args = p.parse_args(argv)
    if args.out is None:
        args.out = FAMILY_DEFAULTS[args.family]["out"]
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
    summary = train(yaml_path, args.out, family=args.family, model=args.model, imgsz=args.imgsz,
                    hours=args.hours, batch=args.batch, workers=args.workers, lr0=args.lr0,
                    warmup_epochs=args.warmup_epochs, optimizer=args.optimizer, init_weights=args.init_weights,
                    freeze=args.freeze, resume=args.resume)
    summary["command"] = "fdl-robot-train-detector " + " ".join(argv if argv is not None else sys.argv[1:])
    summary["dataset"] = json.loads((args.dataset / "info.json").read_text())
    onnx_path = export_onnx(args.out / "best.pt", args.imgsz, args.family)
    summary["onnx"] = onnx_path.name
    write_json(args.out / "training.json", summary, "training summary")
    print(json.dumps({k: v for k, v in summary.items() if k != "dataset"}, indent=2))
    code = 0
    if not args.skip_eval:
        from fdl_robot.eval.detector import main as evaluate_main

        # what detector_node runs: the YOLO .pt through ultralytics, the DETR's ONNX export (detr backend)
        backend, weights = ("detr", onnx_path) if args.family == "detr" else ("ultralytics", args.out / "best.pt")
        code = evaluate_main(["--backend", backend, "--weights", str(weights), "--dataset", str(args.dataset),
                              "--imgsz", str(args.imgsz), "--json", str(args.out / "metrics.json")])
    if args.ship and code == 0:
        shipped_dir = default_model_dir(args.ship_as, args.family)
        shipped = copy_into(shipped_dir, [args.out / name for name in SHIPPED_FILES], "shipped file")
        print(f"shipped into {shipped_dir}: {', '.join(shipped)}")
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
            check(default_model_dir(args.ship_as, args.family), DIRECTORY, "--ship", shipped_ok=True)
    except OutputError as exc:
        parser.error(str(exc))


if __name__ == "__main__":
    raise SystemExit(main())

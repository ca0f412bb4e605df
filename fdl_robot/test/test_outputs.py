"""Output paths are checked before the work, and a failed write is an error, never "written".

/sys stands for a directory no one can write: creating a file there fails even for root
(for whom permission bits and ``os.access`` say yes), so the tests hold as root and as a user.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fdl_robot
from fdl_robot import outputs
from fdl_robot.outputs import (BAG, DIRECTORY, FIGURE, IMAGE, JSON, SHIPPED_MODELS_DIR, VIDEO, Output, OutputError,
                               check, check_args)

UNWRITABLE = Path("/sys")
PACKAGE_ROOT = Path(fdl_robot.__file__).resolve().parents[1]       # the fdl_robot/ holding the package
REPO = PACKAGE_ROOT.parent


def _no_files_left(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --------------------------------------------------------------------------- the checker
def test_a_good_path_passes_and_nothing_is_created(tmp_path):
    target = tmp_path / "a" / "b" / "results.json"
    assert check(target, JSON, "--json") == target
    assert check(tmp_path / "runs" / "one", DIRECTORY, "--out") == tmp_path / "runs" / "one"
    assert _no_files_left(tmp_path) == []          # the probe file is gone, no directory made


@pytest.mark.parametrize("name, kind, expected", [
    ("x", IMAGE, "no extension; image output needs one of .png .jpg"),
    ("results.txt", JSON, "extension '.txt'; JSON output needs .json"),
    ("demo.avi", VIDEO, "extension '.avi'; H.264 video output needs .mp4"),
    ("plot.bmp", FIGURE, "extension '.bmp'; figure output needs one of .png"),
])
def test_an_extension_the_option_cannot_write_is_refused(tmp_path, name, kind, expected):
    with pytest.raises(OutputError) as err:
        check(tmp_path / name, kind, "--out")
    assert str(err.value).startswith(f"--out {tmp_path / name}: {expected}")
    assert "\n" not in str(err.value)


def test_extensions_are_case_insensitive(tmp_path):
    check(tmp_path / "STRIP.PNG", IMAGE, "--strip")
    check(tmp_path / "r.JSON", JSON, "--json")


def test_file_versus_directory(tmp_path):
    (tmp_path / "taken.json").mkdir()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="is a directory; give a file name"):
        check(tmp_path / "taken.json", JSON, "--json")
    with pytest.raises(OutputError, match="exists and is not a directory"):
        check(tmp_path / "afile", DIRECTORY, "--out")
    with pytest.raises(OutputError, match=f"{tmp_path / 'afile'} is not a directory"):
        check(tmp_path / "afile" / "x.json", JSON, "--json")
    with pytest.raises(OutputError, match=f"{tmp_path / 'afile'} is not a directory, so "):
        check(tmp_path / "afile" / "deeper" / "x.json", JSON, "--json")


def test_an_unwritable_directory_is_found_by_trying(tmp_path):
    with pytest.raises(OutputError) as err:
        check(UNWRITABLE / "results.json", JSON, "--json")
    assert str(err.value).startswith(f"--json {UNWRITABLE / 'results.json'}: cannot create files in {UNWRITABLE} (")
    with pytest.raises(OutputError, match="cannot create files in /sys"):
        check(UNWRITABLE / "new" / "dir", DIRECTORY, "--out")     # the nearest existing ancestor decides


def test_a_bag_directory_must_be_new(tmp_path):
    check(tmp_path / "bag", BAG, "--output")
    (tmp_path / "bag").mkdir()
    with pytest.raises(OutputError, match="already exists; a new bag directory is created"):
        check(tmp_path / "bag", BAG, "--output")
    check(tmp_path / "bag", DIRECTORY, "--out")          # an ordinary directory output may exist


def test_shipped_weights_need_the_ship_flag(tmp_path):
    for path, kind in ((SHIPPED_MODELS_DIR / "detector", DIRECTORY), (SHIPPED_MODELS_DIR, DIRECTORY),
                       (SHIPPED_MODELS_DIR / "act" / "run", DIRECTORY),
                       (SHIPPED_MODELS_DIR / "act" / "act.pt", Output("weights", (".pt",)))):
        with pytest.raises(OutputError, match="would replace shipped weights .* give --ship to replace them"):
            check(path, kind, "--out")
    before = _no_files_left(SHIPPED_MODELS_DIR / "detector")
    check(SHIPPED_MODELS_DIR / "detector", DIRECTORY, "--out", shipped_ok=True)
    assert _no_files_left(SHIPPED_MODELS_DIR / "detector") == before
    check(SHIPPED_MODELS_DIR / "act" / "eval.json", JSON, "--json")     # results next to them are not weights
    with pytest.raises(OutputError, match="give --overwrite to"):
        check(SHIPPED_MODELS_DIR / "detector", DIRECTORY, "--out", ship_flag="--overwrite")


def test_output_kinds_are_either_files_or_directories():
    with pytest.raises(ValueError):
        Output("both", (".x",), directory=True)
    with pytest.raises(ValueError):
        Output("neither")
    with pytest.raises(ValueError):
        Output("new file", (".x",), new=True)


def test_check_args_is_a_one_line_parser_error(tmp_path, capsys):
    p = argparse.ArgumentParser(prog="cmd")
    p.add_argument("--json", type=Path)
    p.add_argument("--log-dir", type=Path)
    p.add_argument("-o", "--output", default="")
    check_args(p, p.parse_args([]), {"--json": JSON, "--log-dir": DIRECTORY, "--output": BAG})   # none given
    with pytest.raises(SystemExit) as exit_:
        check_args(p, p.parse_args(["--log-dir", str(UNWRITABLE / "logs")]), {"--log-dir": DIRECTORY})
    assert exit_.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert errors == [f"cmd: error: --log-dir {UNWRITABLE / 'logs'}: cannot create files in /sys "
                      f"({errors[0].rsplit('(', 1)[1]}"]


# --------------------------------------------------------------------------- the writers
def test_write_json_replaces_whole_and_keeps_what_it_cannot_write(tmp_path):
    target = tmp_path / "new" / "r.json"
    outputs.write_json(target, {"a": 1})
    outputs.write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert _no_files_left(target.parent) == ["r.json"]             # no partial file left behind
    with pytest.raises(OutputError) as err:
        outputs.write_json(UNWRITABLE / "r.json", {"episodes": 50, "successes": 49}, "--json")
    message = str(err.value)
    assert message.startswith(f"cannot write --json {UNWRITABLE / 'r.json'}: ") and "\n" not in message
    kept = Path(message.rsplit("its content is kept in ", 1)[1])
    try:
        assert json.loads(kept.read_text()) == {"episodes": 50, "successes": 49}
    finally:
        kept.unlink()


def test_write_image_fails_loudly_where_imwrite_only_warns(tmp_path):
    import cv2

    img = np.full((8, 8, 3), 200, np.uint8)
    assert cv2.imwrite(str(UNWRITABLE / "x.png"), img) is False          # the bug: a warning, no exception
    with pytest.raises(OutputError, match="cannot write image /sys/x.png"):
        outputs.write_image(UNWRITABLE / "x.png", img)
    with pytest.raises(OutputError, match="OpenCV cannot encode ''"):
        outputs.write_image(tmp_path / "x", img)
    outputs.write_image(tmp_path / "x.jpg", img, params=[cv2.IMWRITE_JPEG_QUALITY, 90])
    assert cv2.imread(str(tmp_path / "x.jpg")).shape == (8, 8, 3)


def test_write_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    try:
        outputs.write_figure(tmp_path / "f.svg", fig)
        assert (tmp_path / "f.svg").read_text().lstrip().startswith("<?xml")
        with pytest.raises(OutputError, match="cannot write figure .*f.bmp: Format 'bmp' is not supported"):
            outputs.write_figure(tmp_path / "f.bmp", fig)
        with pytest.raises(OutputError, match="cannot write plot /sys/f.png"):
            outputs.write_figure(UNWRITABLE / "f.png", fig, "plot")
    finally:
        plt.close(fig)


def test_writing_gives_other_libraries_the_same_error():
    with pytest.raises(OutputError, match=r"^cannot write checkpoint /sys/x.pt: Permission denied$"):
        with outputs.writing("/sys/x.pt", "checkpoint"):
            open("/sys/x.pt", "wb")
    with pytest.raises(OutputError, match=r"^cannot write /x: a b c$"):
        with outputs.writing("/x"):
            raise OSError("a\n b   c")             # h5py-style multi-line message, one line


def test_copy_into(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "best.pt").write_bytes(b"w")
    (tmp_path / "run" / "metrics.json").write_text("{}")
    names = ("best.pt", "missing", "metrics.json")
    copied = outputs.copy_into(tmp_path / "ship", [tmp_path / "run" / n for n in names])
    assert copied == ["best.pt", "metrics.json"]
    assert (tmp_path / "ship" / "best.pt").read_bytes() == b"w"
    assert outputs.copy_into(tmp_path / "run", [tmp_path / "run" / "best.pt"]) == ["best.pt"]     # already there
    with pytest.raises(OutputError, match="cannot write shipped file /sys/best.pt"):
        outputs.copy_into(UNWRITABLE, [tmp_path / "run" / "best.pt"], "shipped file")


def test_exit_on_error_is_one_line_and_status_1():
    @outputs.exit_on_error
    def main(path):
        outputs.write_text(path, "x")
        return 0

    with pytest.raises(SystemExit) as exit_:
        main(UNWRITABLE / "x.txt")
    assert str(exit_.value.code).startswith("error: cannot write /sys/x.txt: ")
    kept = Path(str(exit_.value.code).rsplit("kept in ", 1)[1])
    kept.unlink()


def test_a_failed_strip_write_is_an_error_not_a_warning(tmp_path):
    from fdl_robot.eval.media import write_strip, write_video

    frames = [np.zeros((16, 16, 3), np.uint8)] * 3
    with pytest.raises(OutputError, match="cannot write image strip /sys/strip.png"):
        write_strip(frames, UNWRITABLE / "strip.png")
    with pytest.raises(OutputError, match="cannot write video /sys/v.mp4: ffmpeg: "):
        write_video(frames, UNWRITABLE / "v.mp4", fps=10)
    write_strip(frames, tmp_path / "s" / "strip.png", cols=2)
    assert (tmp_path / "s" / "strip.png").stat().st_size > 0


def test_pipeline_demo_never_says_written_when_it_was_not(capsys):
    from fdl_robot.pipeline_demo import run

    with pytest.raises(OutputError, match="cannot write annotated frame /sys/demo.png"):
        run(frames=1, out=UNWRITABLE / "demo.png")
    assert "annotated last frame" not in capsys.readouterr().out


def test_training_defaults_are_not_the_shipped_weights():
    from fdl_robot.perception import train_detector
    from fdl_robot.policy.act import train as act_train

    for default in (*(family["out"] for family in train_detector.FAMILY_DEFAULTS.values()),
                    act_train._parser().get_default("out")):
        assert SHIPPED_MODELS_DIR not in Path(default).resolve().parents
        check(default, DIRECTORY, "--out")                # and the checker agrees
    assert set(act_train.RUN_FILES) <= {p.name for p in (SHIPPED_MODELS_DIR / "act").iterdir()}
    assert {"best.pt", "best.onnx", "metrics.json", "training.json"} <= set(train_detector.SHIPPED_FILES)


# --------------------------------------------------------------------------- the commands
#: (command, arguments, how the error after "<prog>: error: " begins). Each would work for minutes
#: (rendering, training, evaluating) before writing that output.
COMMANDS = [
    (["-m", "fdl_robot.eval.closed_loop"], ["--json", "/sys/closed_loop.json"],
     "--json /sys/closed_loop.json: cannot create files in /sys"),
    (["-m", "fdl_robot.eval.closed_loop"], ["--video", "demo.avi"],
     "--video demo.avi: extension '.avi'; H.264 video output needs .mp4"),
    (["-m", "fdl_robot.eval.sim_act"], ["--json", "results"], "--json results: no extension; JSON output needs .json"),
    (["-m", "fdl_robot.sim.cli", "snapshot"], ["--out", "x"], "--out x: no extension; image output needs one of"),
    (["-m", "fdl_robot.sim.cli", "evaluate"], ["--strip", "/sys/strip.png"],
     "--strip /sys/strip.png: cannot create files in /sys"),
    (["-m", "fdl_robot.sim.cli", "record"], ["--out", "afile"], "--out afile: exists and is not a directory"),
    (["-m", "fdl_robot.eval.detector"], ["--json", "eval.txt"], "--json eval.txt: extension '.txt'"),
    (["-m", "fdl_robot.perception.train_detector"], ["--out", str(SHIPPED_MODELS_DIR / "detector")],
     f"--out {SHIPPED_MODELS_DIR / 'detector'}: would replace shipped weights"),
    (["-m", "fdl_robot.perception.train_detector"], ["--ship", "--skip-eval"], "--ship needs the evaluation"),
    (["-m", "fdl_robot.policy.act.train"], ["--data", "demos", "--out", str(SHIPPED_MODELS_DIR / "act")],
     f"--out {SHIPPED_MODELS_DIR / 'act'}: would replace shipped weights"),
    (["-m", "fdl_robot.policy.act.record"], ["--out", "/sys/demos"], "--out /sys/demos: cannot create files in /sys"),
    (["-m", "fdl_robot.pipeline_demo"], ["--out", "/dev/null/demo.png"],
     "--out /dev/null/demo.png: /dev/null is not a directory"),
    ([str(REPO / "benchmarks" / "bench_latency.py")], ["--png", "latency.bmp"],
     "--png latency.bmp: extension '.bmp'; figure output needs"),
]


@pytest.mark.parametrize("command, args, expected", COMMANDS, ids=[" ".join(c[-1:] + a[:1]) for c, a, _ in COMMANDS])
def test_a_command_refuses_a_bad_output_before_any_work(tmp_path, command, args, expected):
    (tmp_path / "afile").write_text("not a directory")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")])}
    t0 = time.monotonic()
    result = subprocess.run([sys.executable, *command, *args], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    elapsed = time.monotonic() - t0
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(errors) == 1 and errors[0].split(": error: ", 1)[1].startswith(expected), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert _no_files_left(tmp_path) == ["afile"]                  # nothing rendered, recorded or trained
    assert elapsed < 30.0, f"took {elapsed:.1f} s: the check came after some work"

"""Output paths of the commands: checked before the work, written whole or not at all.

Every command that writes files checks each output path right after parsing its arguments
(:func:`check_args`), so that a run of half an hour cannot end in a path it cannot write.
A path passes when

* its extension is one its option writes (:class:`Output`: ``JSON`` .json, ``IMAGE`` what
  OpenCV encodes, ``FIGURE`` what matplotlib saves, ``VIDEO`` .mp4; ``DIRECTORY`` and
  ``BAG`` are directories, a bag one that does not exist yet);
* a file output is not an existing directory and a directory output not an existing file;
* the directory that will hold it exists, or can be created: its nearest existing ancestor
  is a directory, and a file can be created in that directory. This is probed by creating
  and removing an empty temporary file, since permission bits say nothing for root or a
  read-only mount (``os.access`` says "/sys" is writable to root; it is not). A disk that
  fills up during the run is caught by the writers below;
* it would not replace the shipped weights: a directory output, or a .pt/.onnx file, in
  :data:`SHIPPED_MODELS_DIR` is refused unless the command's own flag (``--ship``) was given.

The check creates nothing: the writers below create missing directories when they write.

After the work, :func:`write_bytes`, :func:`write_text`, :func:`write_json`,
:func:`write_image` and :func:`write_figure` write to a temporary file in the target's
directory and rename it over the target, so a reader never sees half a file and a failed
write leaves the old file as it was; they raise :class:`OutputError` with a one-line reason. Text that cannot be written
(the results of a run) is kept in a temporary file that the error names: nothing measured is
lost. :func:`writing` gives other libraries' writers (``torch.save``, ``savefig``,
``shutil.copy``) the same one-line error; :func:`exit_on_error` turns an OutputError that
leaves a command's ``main`` into that line on stderr and exit status 1. No ROS import.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BAG", "DIRECTORY", "FIGURE", "IMAGE", "JSON", "SHIPPED_MODELS_DIR", "VIDEO", "Output", "OutputError",
           "check", "check_args", "copy_into", "exit_on_error", "write_bytes", "write_figure", "write_image",
           "write_json", "write_text", "writing"]

#: The weights shipped with the package (``fdl_robot/models/``: ``detector/``, ``act/``).
SHIPPED_MODELS_DIR = Path(__file__).resolve().parent / "models"
#: File extensions of weights: such a file in SHIPPED_MODELS_DIR is a shipped model.
WEIGHT_SUFFIXES = (".pt", ".onnx")


class OutputError(Exception):
    """An output that cannot be written; ``str()`` is the one-line reason, naming the path."""


@dataclass(frozen=True)
class Output:
    """What an option writes: files with one of ``suffixes`` (lower case, with the dot), or
    a directory (``directory``), which must not exist yet if ``new``."""

    what: str
    suffixes: tuple[str, ...] = ()
    directory: bool = False
    new: bool = False

    def __post_init__(self):
        if self.directory == bool(self.suffixes):
            raise ValueError(f"{self.what}: give either suffixes (a file output) or directory=True")
        if self.new and not self.directory:
            raise ValueError(f"{self.what}: only a directory output can be new")


JSON = Output("JSON", (".json",))
#: What ``cv2.imencode`` writes (OpenCV 4 and 5 without optional codecs).
IMAGE = Output("image", (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"))
#: What matplotlib's Agg backend saves, of the common formats.
FIGURE = Output("figure", (".png", ".pdf", ".svg", ".jpg", ".jpeg"))
#: ``eval.media.write_video`` encodes H.264 with ``+faststart``, an MP4 feature.
VIDEO = Output("H.264 video", (".mp4",))
DIRECTORY = Output("directory", directory=True)
#: A rosbag2 directory: created by the recorder, never written into an existing one (as ``ros2 bag record``).
BAG = Output("bag directory", directory=True, new=True)


def _dest(option: str) -> str:
    """argparse's attribute name of an option string ("--log-dir" -> "log_dir")."""
    return option.lstrip("-").replace("-", "_")


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _probe(directory: Path) -> None:
    """Create and remove a file in ``directory``; OSError if that is impossible."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=".fdl_robot_write_probe_")
    os.close(fd)
    os.unlink(name)


def _is_shipped(path: Path, kind: Output) -> bool:
    resolved = path.resolve()
    inside = resolved == SHIPPED_MODELS_DIR or SHIPPED_MODELS_DIR in resolved.parents
    return inside and (kind.directory or resolved.suffix.lower() in WEIGHT_SUFFIXES)


def check(path: str | os.PathLike, kind: Output, option: str, *, shipped_ok: bool = False,
          ship_flag: str = "--ship") -> Path:
    """``path`` as a Path if ``option`` can write ``kind`` there (module docstring); else
    OutputError "<option> <path>: <reason>". ``shipped_ok``: the command was told (by
    ``ship_flag``) to replace shipped weights."""
    p = Path(path)
    where = f"{option} {path}"
    try:
        _check(p, kind, where, shipped_ok, ship_flag)
    except OSError as exc:         # e.g. a parent directory that cannot be searched
        raise OutputError(f"{where}: {_reason(exc)}") from exc
    return p


def _check(p: Path, kind: Output, where: str, shipped_ok: bool, ship_flag: str) -> None:
    if kind.suffixes and p.suffix.lower() not in kind.suffixes:
        got = f"extension '{p.suffix}'" if p.suffix else "no extension"
        need = kind.suffixes[0] if len(kind.suffixes) == 1 else "one of " + " ".join(kind.suffixes)
        raise OutputError(f"{where}: {got}; {kind.what} output needs {need}")
    if p.exists():
        if kind.directory and not p.is_dir():
            raise OutputError(f"{where}: exists and is not a directory")
        if kind.new:
            raise OutputError(f"{where}: already exists; a new {kind.what} is created, never one written into")
        if not kind.directory and p.is_dir():
            raise OutputError(f"{where}: is a directory; give a file name")
    if not shipped_ok and _is_shipped(p, kind):
        raise OutputError(f"{where}: would replace shipped weights in {SHIPPED_MODELS_DIR}; "
                          f"write elsewhere, or give {ship_flag} to replace them")
    holder = p.absolute() if kind.directory else p.absolute().parent
    base = _nearest_existing(holder)
    if not base.is_dir():
        raise OutputError(f"{where}: {base} is not a directory" if base == holder else
                          f"{where}: {base} is not a directory, so {holder} cannot be created")
    try:
        _probe(base)
    except OSError as exc:
        raise OutputError(f"{where}: cannot create files in {base} ({_reason(exc)})") from exc


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace, outputs: Mapping[str, Output], *,
               shipped_ok: bool = False, ship_flag: str = "--ship") -> None:
    """:func:`check` every ``{option: kind}`` of ``outputs`` that ``args`` has a value for
    (None or '' = not given); the first failure is ``parser.error`` (usage, the one line, exit 2)."""
    for option, kind in outputs.items():
        value = getattr(args, _dest(option))
        if value is None or value == "":
            continue
        try:
            check(value, kind, option, shipped_ok=shipped_ok, ship_flag=ship_flag)
        except OutputError as exc:
            parser.error(str(exc))


def _reason(exc: OSError) -> str:
    """One line: the OS's message, or the library's own (h5py, ...) with its whitespace collapsed."""
    return exc.strerror or " ".join(str(exc).split()) or type(exc).__name__


@contextlib.contextmanager
def writing(path: str | os.PathLike, what: str = "") -> Iterator[Path]:
    """Wrap another library's write of ``path``: OSError (and a library's own error
    carrying one) becomes OutputError "cannot write <what> <path>: <reason>"."""
    try:
        yield Path(path)
    except OSError as exc:
        raise OutputError(f"cannot write {what + ' ' if what else ''}{path}: {_reason(exc)}") from exc


def _rescue(data: bytes, suffix: str) -> str:
    """Keep ``data`` in a new temporary file; its path, or '' if even that fails."""
    try:
        fd, name = tempfile.mkstemp(prefix="fdl_robot_unwritten_", suffix=suffix)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return name
    except OSError:
        return ""


def write_bytes(path: str | os.PathLike, data: bytes, what: str = "", rescue: bool = False) -> Path:
    """Write ``data`` to ``path`` whole (temporary file renamed over it), creating missing
    directories. OutputError on failure; with ``rescue`` the data are then kept in a
    temporary file the message names."""
    p = Path(path)
    partial = p.with_name(f".{p.name}.partial-{os.getpid()}")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        os.replace(partial, p)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        kept = _rescue(data, p.suffix) if rescue else ""
        raise OutputError(f"cannot write {what + ' ' if what else ''}{p}: {_reason(exc)}"
                          + (f"; its content is kept in {kept}" if kept else "")) from exc
    return p


def write_text(path: str | os.PathLike, text: str, what: str = "") -> Path:
    """:func:`write_bytes` of UTF-8 ``text``, kept in a temporary file if the write fails."""
    return write_bytes(path, text.encode(), what, rescue=True)


def write_json(path: str | os.PathLike, value: Any, what: str = "", indent: int | None = 2) -> Path:
    """``value`` as JSON (newline-terminated) through :func:`write_text`."""
    return write_text(path, json.dumps(value, indent=indent) + "\n", what)


def write_image(path: str | os.PathLike, bgr: np.ndarray, what: str = "image", params: Sequence[int] = ()) -> Path:
    """A BGR (or grey) uint8 image, encoded by OpenCV for the path's extension (``params``:
    ``cv2.imencode``'s, e.g. JPEG quality), through :func:`write_bytes`. (``cv2.imwrite``
    only logs a warning and returns False when it fails.)"""
    import cv2

    p = Path(path)
    try:
        ok, encoded = cv2.imencode(p.suffix, bgr, list(params))
    except cv2.error as exc:
        raise OutputError(f"cannot write {what} {p}: OpenCV cannot encode '{p.suffix}'") from exc
    if not ok:
        raise OutputError(f"cannot write {what} {p}: OpenCV could not encode the image as '{p.suffix}'")
    return write_bytes(p, encoded.tobytes(), what)


def write_figure(path: str | os.PathLike, figure: Any, what: str = "figure", **savefig_kwargs) -> Path:
    """A matplotlib ``figure`` in the format of the path's extension, through :func:`write_bytes`."""
    import io

    p = Path(path)
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format=p.suffix.lstrip(".").lower(), **savefig_kwargs)
    except ValueError as exc:          # matplotlib: "Format 'x' is not supported"
        raise OutputError(f"cannot write {what} {p}: {' '.join(str(exc).split())}") from exc
    return write_bytes(p, buffer.getvalue(), what)


def copy_into(directory: str | os.PathLike, files: Iterable[str | os.PathLike], what: str = "") -> list[str]:
    """Copy each existing file of ``files`` into ``directory`` under its own name, each whole
    (:func:`write_bytes`); the names copied. Nothing to do where a file already is there."""
    dest, copied = Path(directory), []
    for f in map(Path, files):
        if not f.is_file():
            continue
        if f.resolve() != (dest / f.name).resolve():
            write_bytes(dest / f.name, f.read_bytes(), what)
        copied.append(f.name)
    return copied


def exit_on_error(main: Callable[..., int | None]) -> Callable[..., int | None]:
    """Decorate a command's ``main``: an OutputError leaving it ends the command with
    "error: <reason>" on stderr and exit status 1 (``SystemExit``) instead of a traceback."""
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except OutputError as exc:
            raise SystemExit(f"error: {exc}") from None
    return wrapper

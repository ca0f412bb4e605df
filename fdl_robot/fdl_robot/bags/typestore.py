"""The rosbags typestore of fdl_robot bags: a pinned ROS 2 distribution + our messages.

Bags are written and read with the pure-Python ``rosbags`` library (no rosbag2 on
PyPI). Its typestore supplies the message definitions that go into the bag (mcap
schemas, ``type_description_hash`` in metadata.yaml), so it must describe the messages
exactly as the ROS install that publishes them does:

* the standard messages come from ``rosbags``' store of :data:`DISTRO` (ROS 2 Kilted,
  the distribution of the rclpy wheels this project runs on; the definitions of the
  messages we use are identical from Humble to Kilted and their RIHS01 hashes agree
  with the ``share/<pkg>/msg/*.json`` type descriptions installed here, checked by
  ``test/test_bags.py``);
* ``fdl_robot_interfaces`` (and any other package whose ``.msg`` files are installed)
  are parsed from their ``.msg`` files with ``get_types_from_msg``: found in the
  ``share/`` directories of ``AMENT_PREFIX_PATH`` and this Python's prefix, else in
  the source tree next to the ``fdl_robot`` package.

No ROS import here: the module works wherever ``rosbags`` is installed.
"""
from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

from rosbags.interfaces import Nodetype
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

__all__ = ["DISTRO", "INTERFACES_PACKAGE", "typestore", "ensure_types", "find_msg_file",
           "msg_search_dirs"]

DISTRO = Stores.ROS2_KILTED
INTERFACES_PACKAGE = "fdl_robot_interfaces"


def msg_search_dirs() -> list[Path]:
    """``share`` directories to look for ``<pkg>/msg/<Name>.msg`` in, in order."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes.append(sys.prefix)
    dirs = [Path(p) / "share" for p in prefixes]
    # The source tree: fdl_robot_interfaces/ next to fdl_robot/ (repository root).
    dirs.append(Path(__file__).resolve().parents[3])
    seen, out = set(), []
    for d in dirs:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def find_msg_file(msgtype: str) -> Path | None:
    """The ``.msg`` file of ``pkg/msg/Name`` (None when no search directory has it)."""
    pkg, kind, name = _split(msgtype)
    for d in msg_search_dirs():
        path = d / pkg / kind / f"{name}.msg"
        if path.is_file():
            return path
    return None


def _split(msgtype: str) -> tuple[str, str, str]:
    parts = msgtype.split("/")
    if len(parts) == 2:                       # pkg/Name
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"not a message type name: {msgtype!r} (expected pkg/msg/Name)")
    return parts[0], parts[1], parts[2]


def ensure_types(store, msgtypes) -> list[str]:
    """Register ``msgtypes`` (and the types they use) in ``store`` from installed .msg files.

    Types the store already knows are left alone. Returns the names added. Raises
    KeyError naming the type whose ``.msg`` file cannot be found.
    """
    added: list[str] = []
    pending = [t for t in msgtypes if t not in store.fielddefs]
    while pending:
        msgtype = pending.pop()
        if msgtype in store.fielddefs:
            continue
        path = find_msg_file(msgtype)
        if path is None:
            raise KeyError(f"no definition of {msgtype}: its .msg file is in none of "
                           f"{[str(d) for d in msg_search_dirs()]}")
        types = get_types_from_msg(path.read_text(), "/".join(_split(msgtype)))
        store.register(types)
        added += list(types)
        for _consts, fields in types.values():
            pending += [t for t in _nested_types(fields) if t not in store.fielddefs]
    return added


def _nested_types(fields) -> list[str]:
    """Message type names used by the fields of a parsed definition.

    A field is ``(name, (nodetype, ref))``: NAME refs are type names; ARRAY and
    SEQUENCE refs are ``((nodetype, ref), size)`` around the element type.
    """
    out = []
    for _name, (nodetype, ref) in fields:
        while nodetype in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            (nodetype, ref), _size = ref
        if nodetype == Nodetype.NAME:
            out.append(ref)
    return out


@lru_cache(maxsize=None)
def _cached_typestore():
    store = get_typestore(DISTRO)
    names = [f"{INTERFACES_PACKAGE}/msg/{n}" for n in
             ("CameraView", "Detection2D", "Detection2DArray", "Object3D", "Object3DArray", "Track",
              "TrackArray")]
    ensure_types(store, names)
    return store


def typestore():
    """The shared typestore: :data:`DISTRO` plus ``fdl_robot_interfaces`` (cached).

    Types registered later with :func:`ensure_types` are shared by every user.
    """
    return _cached_typestore()

"""Parameter sources (YAML files, ``-p``) checked against the declared table, as ROS applies them.

How ROS 2 applies them (rcl's argument parser and rclpy's overrides; each rule below was
checked against rclpy 9.1 here):

* a command line's ``--ros-args`` sections hold ``--params-file FILE`` and ``-p NAME:=VALUE``
  items, applied in order: the later wins (``--params-file F -p x:=1``: ``-p`` wins);
* a node's own arguments (``cli_args``, what a launch file's ``Node(parameters=...)`` becomes)
  win over the process's command line;
* a YAML section applies to a node when its name matches the node's fully qualified name:
  the leading ``/`` is optional, ``/*`` stands for one name token and ``/**`` for any number
  (rclcpp's and rclpy's rule: ``/*`` -> ``(/\\w+)``, then a full regex match), so
  ``/**/detector_node`` matches it in any namespace. Mapping levels above ``ros__parameters``
  are namespace levels; mappings below it make dotted names (``a: {b: 1}`` sets ``a.b``);
* ``-p name:=value`` applies to every node of the process, ``-p node:name:=value`` to the
  node called ``node``; values are YAML.

ROS silently ignores a key that no node declares and a section that matches no node, and it
refuses an integer where a double is declared. Here (:func:`check_sources`, called by every
node before rcl reads its arguments, and by the runners before anything starts):

* a key that matches no declared parameter of its node is an error naming the file, the
  section and the key, with the closest declared name; a section whose node name is no
  fdl_robot node (``/**/detectr_node``) likewise. A section ending in a wildcard (``/**``,
  ``/arm1/*``) may set any parameter some fdl_robot node declares;
* ``-p`` naming an unknown node or a parameter none of its nodes declares is an error;
* :func:`typed_value` takes an integer where a double is declared (and integer arrays for
  double arrays); any other mismatch is one line: node, parameter, expected and given type.

Limitation: a section for a node renamed in another process (``-r __node:=left``) is unknown
here; a rename in this process's own arguments is understood.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fdl_robot.ros.parameters import NODE_PARAMETERS, Param

__all__ = ["ParameterError", "check_sources", "parameter_arguments", "parse_param", "resolve_overrides",
           "typed_value"]

#: Parameters every rclpy node declares itself.
BUILTIN_PARAMETERS = ("use_sim_time", "start_type_description_service")
#: rcl flags inside --ros-args that take a value (besides -p, --params-file and -r).
_FLAGS_WITH_VALUE = ("-e", "--enclave", "--log-level", "--log-config-file", "--log-file-name")


class ParameterError(ValueError):
    """A parameter source that addresses nothing, or a value of the wrong type (one line)."""


# --- command lines ------------------------------------------------------------------------

def parameter_arguments(argv: Sequence[str] | None) -> list[tuple[str, str]]:
    """The ``("file", path)``, ``("param", "[node:]name:=value")`` and ``("remap", rule)``
    items of the ``--ros-args`` sections of ``argv``, in order (a section ends at ``--``)."""
    items: list[tuple[str, str]] = []
    tokens = iter(argv or ())
    in_ros = False
    for token in tokens:
        if token == "--ros-args":
            in_ros = True
        elif not in_ros:
            continue
        elif token == "--":
            in_ros = False
        elif token in ("-p", "--param", "--params-file", "-r", "--remap"):
            kind = {"--params-file": "file", "-r": "remap", "--remap": "remap"}.get(token, "param")
            items.append((kind, next(tokens, "")))
        elif token in _FLAGS_WITH_VALUE:
            next(tokens, None)
    return items


def parse_param(text: str) -> tuple[str, str, Any]:
    """``[node:]name:=value`` -> (node or '', name, value parsed as YAML, as rcl does)."""
    import yaml

    key, sep, raw = text.partition(":=")
    node, _, name = key.rpartition(":")
    if not sep or not name:
        raise ParameterError(f"-p takes [node:]name:=value, got '{text}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        value = raw                      # rcl reads what YAML cannot parse as a string
    _check_value(value, f"-p {text}")
    return node, name, value


def resolve_overrides(items: Iterable[str], nodes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``[node:]name:=value`` items -> {node: {name: value}} for the ``nodes`` of a graph.

    ``name:=value`` goes to every node that declares ``name``, ``node:name:=value`` to that
    node; ParameterError when a node or parameter matches nothing."""
    out: dict[str, dict[str, Any]] = {}
    for text in items:
        node, name, value = parse_param(text)
        targets = _param_targets(node, name, nodes, {n: n for n in nodes}, f"-p {text}")
        for target in targets:
            out.setdefault(target, {})[name] = value
    return out


# --- the check ----------------------------------------------------------------------------

def check_sources(items: Sequence[tuple[str, str]], nodes: Sequence[str]) -> None:
    """Raise :class:`ParameterError` for the first item of a command line that addresses nothing.

    ``items``: :func:`parameter_arguments` of the command line; ``nodes``: the fdl_robot
    nodes (keys of ``NODE_PARAMETERS``) that take it -- every node of the process for the
    process's arguments, the one node for a node's own.
    """
    aliases = {name: name for name in NODE_PARAMETERS}
    for kind, text in items:
        if kind == "remap":
            _add_rename(text, nodes, aliases)
    for kind, text in items:
        if kind == "file":
            check_params_file(text, aliases)
        elif kind == "param":
            node, name, _value = parse_param(text)
            _param_targets(node, name, nodes, aliases, f"-p {text}")


def _add_rename(rule: str, nodes: Sequence[str], aliases: dict[str, str]) -> None:
    """``[node:]__node:=new`` renames a node: its sections may use the new name."""
    key, sep, new = rule.partition(":=")
    node, _, what = key.rpartition(":")
    if not sep or what != "__node":
        return
    if node in NODE_PARAMETERS:
        aliases[new] = node
    elif not node and len(nodes) == 1:
        aliases[new] = nodes[0]


def _param_targets(node: str, name: str, nodes: Sequence[str], aliases: Mapping[str, str],
                   where: str) -> list[str]:
    if node:
        if node not in aliases:
            raise ParameterError(f"{where}: no node '{node}' (nodes: {', '.join(sorted(aliases))})"
                                 f"{_suggest(node, aliases)}")
        table = aliases[node]
        if name not in _declared(table):
            raise ParameterError(f"{where}: {table} has no parameter '{name}'{_suggest(name, _declared(table))}")
        return [table] if table in nodes else []
    targets = [n for n in nodes if name in _declared(n)]
    if not targets:
        known = sorted({p for n in nodes for p in _declared(n)})
        raise ParameterError(f"{where}: no parameter '{name}' in {', '.join(nodes) or 'any node'}"
                             f"{_suggest(name, known)}")
    return targets


def check_params_file(path: str | Path, aliases: Mapping[str, str] | None = None) -> None:
    """Every section of a ``ros__parameters`` YAML names an fdl_robot node (or ends in a
    wildcard) and sets only what that node declares; ParameterError otherwise."""
    aliases = aliases if aliases is not None else {name: name for name in NODE_PARAMETERS}
    for section, params in load_params_file(path).items():
        last = section.rstrip("/").rsplit("/", 1)[-1]
        if last in ("*", "**"):
            allowed = sorted({p for n in NODE_PARAMETERS for p in _declared(n)})
            owner = "any fdl_robot node"
        elif last in aliases:
            allowed, owner = _declared(aliases[last]), aliases[last]
        else:
            close = difflib.get_close_matches(last, list(aliases), n=1)
            hint = f" (did you mean '{section[: len(section) - len(last)]}{close[0]}'?)" if close else ""
            raise ParameterError(f"{path}: section '{section}' matches no fdl_robot node{hint}; "
                                 f"nodes: {', '.join(NODE_PARAMETERS)}")
        for name in params:
            if name not in allowed:
                raise ParameterError(f"{path}: {section}: {owner} has no parameter '{name}'"
                                     f"{_suggest(name, allowed)}")


def load_params_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """{section (node name pattern, with a leading '/'): {dotted parameter name: value}} of a
    ``ros__parameters`` YAML, or ParameterError naming the file and what is wrong."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"parameters file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{path}: cannot read it ({exc})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ParameterError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterError(f"{path}: expected node names, each with ros__parameters, at the top level")
    sections: dict[str, dict[str, Any]] = {}
    _collect_sections(data, [], path, sections)
    return sections


def _collect_sections(data: dict, names: list[str], path: Path, out: dict[str, dict[str, Any]]) -> None:
    for key, value in data.items():
        if key == "ros__parameters":
            section = "/" + "/".join(str(n).strip("/") for n in names)
            if not isinstance(value, dict):
                raise ParameterError(f"{path}: {section}: ros__parameters must be a mapping of names to values")
            params = out.setdefault(section, {})
            _flatten(value, "", params, f"{path}: {section}")
        elif isinstance(value, dict):
            _collect_sections(value, [*names, str(key)], path, out)
        else:
            where = "/".join(map(str, [*names, key]))
            raise ParameterError(f"{path}: '{where}' has a value before ros__parameters (write "
                                 "<node name>: {ros__parameters: {name: value}})")


def _flatten(params: dict, prefix: str, out: dict[str, Any], where: str) -> None:
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten(value, name + ".", out, where)
        else:
            _check_value(value, f"{where}: {name}")
            out[name] = value


def _check_value(value: Any, where: str) -> None:
    """What rcl cannot read: no value, and arrays that mix types ([1, 0.5])."""
    if value is None:
        raise ParameterError(f"{where}: no value")
    if isinstance(value, list):
        kinds = {_scalar_type(v) for v in value}
        if len(kinds) > 1:
            hint = ": write every number with a decimal point (1.0)" if kinds == {"integer", "double"} else ""
            raise ParameterError(f"{where}: the array {value} mixes {' and '.join(sorted(kinds))} values, "
                                 f"which ROS 2 cannot read{hint}")


# --- types --------------------------------------------------------------------------------

def _scalar_type(value: Any) -> str:
    for kind, py in (("bool", bool), ("integer", int), ("double", float), ("string", str)):
        if isinstance(value, py):
            return kind
    return type(value).__name__


def ros_type(value: Any) -> str:
    """The ROS parameter type of a value: 'double', 'string array', 'empty array', ..."""
    if isinstance(value, (list, tuple)):
        kinds = {_scalar_type(v) for v in value}
        return "empty array" if not kinds else f"{kinds.pop()} array" if len(kinds) == 1 else "mixed array"
    if isinstance(value, bytes):
        return "byte array"
    return "not set" if value is None else _scalar_type(value)


def typed_value(node_name: str, param: Param, value: Any) -> Any:
    """``value`` as the type ``param`` is declared with: an integer (array) is taken where a
    double (array) is declared; any other mismatch raises one line naming node, parameter,
    expected and given type."""
    expected, given = ros_type(param.default), ros_type(value)
    if given == expected:
        return list(value) if isinstance(value, tuple) else value
    if (expected, given) == ("double", "integer"):
        return float(value)
    if expected == "double array" and given == "integer array":
        return [float(v) for v in value]
    if given == "not set":
        got = "an empty array or no value (ROS 2 cannot type [])"
    else:
        got = f"{_article(given)} {value!r}"
        if expected == "string":
            got += f"; quote it to pass a string: \"{value}\""
    raise ParameterError(f"{node_name}: parameter '{param.name}' is {_article(expected)}, got {got}")


def _article(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _declared(node_name: str) -> list[str]:
    """Parameters of a node name or key (``wrist_camera/localizer_node``: the localizer's)."""
    return [p.name for p in NODE_PARAMETERS[node_name.rpartition("/")[2]]] + list(BUILTIN_PARAMETERS)


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""

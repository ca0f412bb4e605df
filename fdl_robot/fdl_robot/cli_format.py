"""The ``--help`` layout of every fdl_robot command: descriptions as written, and defaults.

``HelpFormatter`` keeps description and epilog as written (``RawDescriptionHelpFormatter``)
and appends ``(default: ...)`` to every option that has a default (strings quoted, so an
empty one shows as ``''``), also to options written without a help text, which argparse
would otherwise list bare. A help text that already states its default is left as it is.
"""
from __future__ import annotations

import argparse
import copy

__all__ = ["HelpFormatter", "default_text"]


def default_text(action: argparse.Action) -> str:
    """``(default: ...)`` of an option, or '' when it has none worth showing (None, or the
    empty list a repeatable option starts from)."""
    if action.default is None or action.default is argparse.SUPPRESS or action.default == []:
        return ""
    if not (action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)):
        return ""
    return f"(default: {action.default!r})" if isinstance(action.default, str) else f"(default: {action.default})"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``formatter_class`` of every console command (``ArgumentParser`` and ``add_parser``)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower():
            return text
        extra = default_text(action).replace("%", "%%")       # argparse %-formats the help
        return f"{text} {extra}".strip()

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and action.help is not argparse.SUPPRESS and default_text(action):
            action = copy.copy(action)
            action.help = default_text(action).replace("%", "%%")
        return super()._format_action(action)

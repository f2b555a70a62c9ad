"""MkDocs hooks: the command-line reference rendered from the real parser.

``docs/cli.md`` holds the marker ``<!-- cli-reference -->``; at build time it is replaced by
one section per subcommand with the help text that ``python -m benchmark CMD --help`` prints,
so the reference cannot drift from the code.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

MARKER = "<!-- cli-reference -->"
#: Help is wrapped at this width, whatever terminal runs the build.
WIDTH = 100


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Subcommand name -> its parser, in the order ``--help`` lists them."""
    for action in parser._actions:  # argparse has no public accessor for subparsers
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _summaries(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Subcommand name -> the one-line help shown in the main ``--help``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help or "" for a in action._choices_actions}
    return {}


def _fence(text: str) -> str:
    return "```text\n" + text.rstrip() + "\n```\n"


def cli_reference() -> str:
    """Markdown for every subcommand: a summary table, then each command's full help."""
    from benchmark.cli import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)  # argparse wraps at the terminal width it finds
    try:
        parser = build_parser()
        commands = _subcommands(parser)
        summaries = _summaries(parser)
        parts = ["| command | what it does |", "|---|---|"]
        parts += [f"| [`{name}`](#{name}) | {summaries.get(name, '')} |" for name in commands]
        parts += ["", "## `python -m benchmark` {#main}", "", _fence(parser.format_help())]
        for name, sub in commands.items():
            parts += [f"## `{name}` {{#{name}}}", "", _fence(sub.format_help())]
        return "\n".join(parts)
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace the marker in the CLI page with the rendered reference."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference())

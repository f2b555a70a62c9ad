"""Command-line interface: ``python -m benchmark {list,run,check,train,compare,gate,report,...}``.

User errors (unknown names, bad parameters, corrupt files) print one line on stderr and exit
with the error's code (2 for usage errors, 1 for data errors); they never show a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence

from benchmark.errors import BenchmarkError, UsageError
from benchmark.registry import PluginWarning

MAIN_EXAMPLES = """\
examples:
  python -m benchmark list                          what can be benchmarked, and where it comes from
  python -m benchmark run --methods unet,telea --masks lines,square
  python -m benchmark run --methods all --masks lines,square --limit 500
  python -m benchmark check my-method my-mask       contract checks of (plug-in) entries
  python -m benchmark report results/runs/<run-id>  an HTML report of a finished run
  python -m benchmark gate                          the CI configuration and regression gate

'python -m benchmark COMMAND --help' shows each command's options and examples.
"""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


#: Subcommand -> (module under ``benchmark.commands``, one-line help). Each module has
#: ``EXAMPLES``, ``add_arguments(parser)`` and ``run(args)``; it is imported only when its command
#: runs (or for ``COMMAND --help``), so ``python -m benchmark --help`` imports none of them.
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("listing", "list registered methods, masks, data sets and metrics"),
    "check": (
        "check",
        "run the contract checks on methods, masks, data sets or metrics (plug-ins included)",
    ),
    "run": ("run", "evaluate methods on masks and print leaderboards"),
    "train": (
        "train",
        "train a learned method (unet, unet-fill, pconv or a plug-in) and write its weights",
    ),
    "compare": ("compare", "compare two leaderboards or runs: the regression gate"),
    "gate": ("gate", "run the CI configuration (results/ci.toml) and the regression gate"),
    "report": ("report", "write a self-contained HTML report of a run"),
    "export": ("export", "write the benchmark's inputs as PNGs for models outside the harness"),
    "export-model": ("export_model", "write a shipped U-Net as an ONNX or TorchScript file"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``benchmark`` argument parser with its subcommands.

    Every subcommand is listed; ``only`` (the command being run) limits which command modules
    are imported to fill in their options (all of them when None).
    """
    parser = _Parser(
        prog="python -m benchmark",
        description="inpaint-bench: benchmark image-inpainting methods on deterministic masks.",
        epilog=MAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (module_name, help_text) in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(f"benchmark.commands.{module_name}")
        p_sub = sub.add_parser(
            name,
            help=help_text,
            description=getattr(module, "DESCRIPTION", help_text),
            epilog=module.EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p_sub)
        p_sub.set_defaults(func=module.run)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is one), if any."""
    return next((word for word in argv if word in COMMANDS), None)


_python_formatwarning = warnings.formatwarning


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    """Plug-in warnings as ``warning: ...`` on one line; others keep Python's format."""
    if issubclass(category, PluginWarning):
        return f"warning: {error_line(str(message))}\n"
    return _python_formatwarning(message, category, filename, lineno, line)


#: Longest error line printed (characters): a hostile 100,000-character name is cut in the middle.
ERROR_LINE_CHARS = 1000


def error_line(text: str, limit: int = ERROR_LINE_CHARS) -> str:
    """``text`` on one line, at most ``limit`` characters: the middle of a longer text is cut,
    so the start (what failed) and the end (what to do) stay.

    >>> error_line("a" * 50 + "z" * 50, limit=40)
    'aaaaaaaaaaaaaaaaa … [75 cut] … zzzzzzzz'
    """
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    tail = limit // 5
    head = max(0, limit - tail - len(f" … [{len(text)} cut] … "))  # room for the longest count
    return f"{text[:head]} … [{len(text) - head - tail} cut] … {text[len(text) - tail :]}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse ``argv``, run the subcommand, turn user errors into one line."""
    # OpenCV logs decoder warnings on stderr; corrupt files are reported by our own one line.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    warnings.formatwarning = _one_line_warning
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args = build_parser(only=_command_of(argv) or "").parse_args(argv)
        return args.func(args)
    except BenchmarkError as exc:
        print(f"error: {error_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C: 130; SIGTERM/SIGHUP during a run: 143/129
        cause = f" by {exc.signal_name}" if hasattr(exc, "signal_name") else ""
        print(f"interrupted{cause}", file=sys.stderr)
        return getattr(exc, "exit_code", 130)
    except BrokenPipeError:  # output piped into `head` and the like: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except OSError as exc:  # unwritable --out, full disk, unreadable path: the user's to fix
        print(f"error: {error_line(str(exc))}", file=sys.stderr)
        return 1

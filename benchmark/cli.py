"""Command-line interface: ``python -m benchmark {list,run,check,train,compare,gate,report,...}``.

User errors (unknown names, bad parameters, corrupt files) print one line on stderr and exit
with the error's code (2 for usage errors, 1 for data errors); they never show a traceback.
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import sys
import warnings
from collections.abc import Sequence

from benchmark.errors import BenchmarkError, UsageError
from benchmark.registry import BUILTIN, PluginWarning, Registry

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

RUN_EXAMPLES = """\
examples:
  python -m benchmark run --methods telea,ns,diffusion,mean --masks lines,square --limit 500
  python -m benchmark run --methods all --masks lines,square
  python -m benchmark run --methods telea:radius=5 --masks lines:max_lines=4 --seed 1
  python -m benchmark run --methods telea --masks square --dataset cifar10 --data-dir ~/data
  python -m benchmark run --methods ns --masks lines --dataset folder:photos --size 64

A rerun of the same command reuses finished records in the run folder and computes the rest.
"""

LIST_EXAMPLES = """\
examples:
  python -m benchmark list
  python -m benchmark list methods
  python -m benchmark list masks

Each entry shows its parameters with their defaults (set them as name:key=value) and where it
comes from: [built-in], or the plug-in package and version that declares it.
"""

CHECK_EXAMPLES = """\
examples:
  python -m benchmark check telea
  python -m benchmark check my-method my-mask my-dataset
  python -m benchmark check my-method:strength=2 my-dataset --size 64

Names are exact registered names (with optional :key=value parameters). Methods are checked with
the lines and square masks and with every mask named in the same command. One line per check;
exit 0 when all pass, 1 when any fails, 2 for an unknown name.
"""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _registries() -> dict[str, Registry]:
    from benchmark.datasets import DATASETS
    from benchmark.masking import MASKS
    from benchmark.method import METHODS
    from benchmark.metrics import METRICS

    return {"methods": METHODS, "masks": MASKS, "datasets": DATASETS, "metrics": METRICS}


def plain(text: str) -> str:
    """Docstring markup as plain text: roles and backticks dropped, whitespace on one line.

    >>> plain("Uses :class:`~benchmark.method.Method` and ``min_lines``..``max_lines``.")
    'Uses Method and min_lines..max_lines.'
    """
    text = re.sub(r":[\w:.-]+:`~[\w.]*?\.?(\w+)`", r"\1", text)  # :class:`~a.b.C` -> C
    text = re.sub(r":[\w:.-]+:`([^`]*)`", r"\1", text)  # :func:`a.b` -> a.b
    return " ".join(text.replace("`", "").split())


def summary(obj: object) -> str:
    """The first paragraph of ``obj``'s docstring as one plain line."""
    doc = inspect.getdoc(obj) or ""
    return plain(doc.strip().split("\n\n")[0])


_DIRECTION = {True: "↑", False: "↓", None: " "}


def _metric_line(name: str, registry: Registry) -> str:
    from benchmark import metrics

    metric = registry.get(name)()
    compute = metric.compute
    if getattr(compute, "__name__", "") == "<lambda>":  # the definition is the named function
        compute = getattr(metrics, name, compute)
    arrow = _DIRECTION.get(metric.higher_is_better, " ")
    line = f"  {name} {arrow} [{registry.origin(name)}]: {metric.label}"
    definition = summary(compute)
    return f"{line}. {definition}" if definition else line


def cmd_list(args: argparse.Namespace) -> int:
    """Print registered names with parameters, origin and a one-line description."""
    registries = _registries()
    kinds = [args.kind] if args.kind else list(registries)
    hidden = {"split", "size", "data_dir"}  # given by run's own options, not name:key=value
    for kind in kinds:
        registry = registries[kind]
        if kind == "metrics":
            print("metrics (↑ higher is better, ↓ lower is better, blank: descriptive):")
            for name in registry.names():
                print(_metric_line(name, registry))
            continue
        print(f"{kind}:")
        for name in registry.names():
            factory = registry.get(name)
            params = ", ".join(
                f"{k}={v!r}" for k, v in registry.parameters(name).items() if k not in hidden
            )
            line = f"  {name}"
            if params:
                line += f" ({params})"
            line += f" [{registry.origin(name)}]"
            description = summary(factory)
            if description:
                line += f": {description}"
            print(line)
            slow_note = plain(str(getattr(factory, "slow_note", "") or ""))
            if slow_note:
                print(f"      slow: {slow_note}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Run the contract checks on each named entry; one line per check."""
    from benchmark.testing import check

    results = check(args.names, size=args.size, data_dir=args.data_dir, kind=args.kind)
    for result in results:
        print(result.line())
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _expand_methods(specs: list[str]) -> list[str]:
    from benchmark.method import METHODS

    if specs == ["all"]:  # every method that runs without a user's file (not onnx:, predictions:)
        return [
            name
            for name in METHODS.names()
            if not getattr(METHODS.get(name), "requires_path", False) and _buildable(METHODS, name)
        ]
    if "all" in specs:
        raise UsageError("--methods all cannot be combined with other names")
    return specs


def _buildable(registry: Registry, name: str) -> bool:
    """Built-ins always count; a plug-in that cannot be built (abstract, or its constructor
    fails) is skipped with a one-line warning and recorded in ``failed_plugins``.

    Building a plug-in here and again in the run costs its construction twice; it is the only
    way to learn that ``--methods all`` would otherwise stop on it.
    """
    if registry.origin(name) == BUILTIN:
        return True
    try:
        registry.build(name)
    except BenchmarkError as exc:
        registry.failed_plugins[name] = str(exc)
        warnings.warn(f"skipped: {exc}", PluginWarning, stacklevel=2)
        return False
    return True


def cmd_run(args: argparse.Namespace) -> int:
    """Run the benchmark and print one leaderboard table per mask type."""
    import time

    from benchmark.leaderboard import failure_lines, render_console, run_summary
    from benchmark.run.config import config_from_args
    from benchmark.run.runner import run_benchmark

    methods = _expand_methods(args.methods)
    if not methods or not args.masks:
        raise UsageError("--methods and --masks each need at least one name")
    config = config_from_args(args, methods=methods)
    started = time.perf_counter()
    try:
        result = run_benchmark(config)
    except KeyboardInterrupt:
        print(
            "interrupted: finished records are saved; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    seconds = time.perf_counter() - started
    print(render_console(result.leaderboard, buckets=args.buckets))
    print(run_summary(result.computed, result.reused, seconds, result.run_dir))
    failures = failure_lines(result.leaderboard, result.run_dir / "records.jsonl")
    for line in failures:
        print(line, file=sys.stderr)
    if failures and args.strict:
        print("error: --strict: some images failed (see above); exit 1", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``benchmark`` argument parser with its subcommands."""
    parser = _Parser(
        prog="python -m benchmark",
        description="inpaint-bench: benchmark image-inpainting methods on deterministic masks.",
        epilog=MAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p_list = sub.add_parser(
        "list",
        help="list registered methods, masks, data sets and metrics",
        epilog=LIST_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_list.add_argument(
        "kind",
        nargs="?",
        choices=["methods", "masks", "datasets", "metrics"],
        help="list only this kind (default: all four)",
    )
    p_list.set_defaults(func=cmd_list)

    p_check = sub.add_parser(
        "check",
        help="run the contract checks on methods, masks or data sets (plug-ins included)",
        description="Run the contract checks the built-ins pass on each named method, mask "
        "family or data set: shapes, types, value ranges, determinism, independence of batch "
        "composition, odd sizes and extreme masks, stable data-set indices and splits.",
        epilog=CHECK_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_check.add_argument(
        "names", nargs="+", metavar="NAME", help="exact registered name, or name:key=value,..."
    )
    p_check.add_argument(
        "--size", type=int, default=None, help="image side for data sets (default: their own)"
    )
    p_check.add_argument(
        "--data-dir", default=None, help="where data set files live (e.g. for cifar10)"
    )
    p_check.add_argument(
        "--kind",
        choices=["method", "mask", "dataset"],
        default=None,
        help="check only entries of this kind (for a name that is, e.g., a mask and a data set)",
    )
    p_check.set_defaults(func=cmd_check)

    p_run = sub.add_parser(
        "run",
        help="evaluate methods on masks and print leaderboards",
        epilog=RUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from benchmark.run.config import add_run_arguments

    add_run_arguments(p_run)
    p_run.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when any image failed (after writing every result file)",
    )
    p_run.add_argument(
        "--buckets",
        action="store_true",
        help="also print mean PSNR per mask-ratio bin (NVIDIA bins) for every mask",
    )
    p_run.set_defaults(func=cmd_run)

    from benchmark import train as training

    p_train = sub.add_parser(
        "train",
        help="train a learned method (unet, unet-fill, pconv or a plug-in) and write its weights",
        description="Train a learned method with Adam and MSE, tracking SSIM, on a data set's "
        "train split with masks drawn fresh for every batch.",
        epilog=training.EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_train.add_argument(
        "method", help="the model to train: a registered method that implements Trainable"
    )
    training.add_arguments(p_train)
    p_train.set_defaults(func=training.run)

    from benchmark.commands import compare, export, export_model, gate, report

    for name, module, summary in (
        ("compare", compare, "compare two leaderboards or runs: the regression gate"),
        ("gate", gate, "run the CI configuration (results/ci.toml) and the regression gate"),
        ("report", report, "write a self-contained HTML report of a run"),
        ("export", export, "write the benchmark's inputs as PNGs for models outside the harness"),
        ("export-model", export_model, "write a shipped U-Net as an ONNX or TorchScript file"),
    ):
        p_sub = sub.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=module.EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p_sub)
        p_sub.set_defaults(func=module.run)
    return parser


_python_formatwarning = warnings.formatwarning


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    """Plug-in warnings as ``warning: ...`` on one line; others keep Python's format."""
    if issubclass(category, PluginWarning):
        return f"warning: {' '.join(str(message).split())}\n"
    return _python_formatwarning(message, category, filename, lineno, line)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse ``argv``, run the subcommand, turn user errors into one line."""
    # OpenCV logs decoder warnings on stderr; corrupt files are reported by our own one line.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    warnings.formatwarning = _one_line_warning
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except OSError as exc:  # unwritable --out, full disk, unreadable path: the user's to fix
        print(f"error: {exc}", file=sys.stderr)
        return 1

"""``python -m benchmark run``: evaluate methods on masks and print one leaderboard per mask.

Its options are the fields of :class:`benchmark.run.config.RunConfig` (the one options table),
plus the display options below.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from benchmark.errors import BenchmarkError, UsageError
from benchmark.registry import BUILTIN, PluginWarning, Registry

EXAMPLES = """\
examples:
  python -m benchmark run --methods telea,ns,diffusion,mean --masks lines,square --limit 500
  python -m benchmark run --methods all --masks lines,square
  python -m benchmark run --methods telea:radius=5 --masks lines:max_lines=4 --seed 1
  python -m benchmark run --methods telea --masks square --dataset cifar10 --data-dir ~/data
  python -m benchmark run --methods ns --masks lines --dataset folder:photos --size 64

A rerun of the same command reuses finished records in the run folder and computes the rest.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``run``: the run options table, then how the result is shown."""
    from benchmark.run.config import add_run_arguments

    add_run_arguments(parser)
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when any image failed (after writing every result file)",
    )
    parser.add_argument(
        "--buckets",
        action="store_true",
        help="also print mean PSNR per mask-ratio bin (NVIDIA bins) for every mask",
    )


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


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print one leaderboard table per mask type; exit at once, without
    waiting, if a method that ran in this process left threads running."""
    code = _run(args)
    _exit_if_threads_linger(code)
    return code


def _exit_if_threads_linger(code: int) -> None:
    """Python waits at exit for every non-daemon thread: one a method left running would keep
    the finished run from ending. Say so on one line and leave with ``code``."""
    import os

    from benchmark.run.runner import lingering_threads

    left = lingering_threads()
    if not left:
        return
    names = ", ".join(sorted({t.name for t in left}))
    print(
        f"warning: {len(left)} thread(s) started by a method are still running ({names}); "
        "exiting without waiting for them",
        file=sys.stderr,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _protocol_metrics_note(config) -> None:  # noqa: ANN001
    """Name the metrics a protocol's paper reports that this run did not ask for."""
    if config.protocol is None:
        return
    from benchmark.perceptual import canonical_name
    from benchmark.protocols.base import resolve

    asked = {canonical_name(m) for m in config.metrics}
    missing = [m for m in resolve(config.protocol).reference_metrics if m not in asked]
    if missing:
        print(
            f"note: protocol {config.protocol}'s paper also reports {', '.join(missing)}: add "
            f"--metrics {','.join(missing)} (their weight files are looked up as "
            "docs/guides/perceptual-metrics.md says)",
            file=sys.stderr,
        )


def _run(args: argparse.Namespace) -> int:
    import time

    from benchmark.protocols import apply_protocol
    from benchmark.run.config import OPTIONS, config_from_args
    from benchmark.run.runner import run_benchmark
    from benchmark.tables import failure_lines, render_console, run_summary

    methods = _expand_methods(args.methods)
    given = [name for name in OPTIONS if getattr(args, name, None) is not None]
    config = apply_protocol(config_from_args(args, methods=methods), given)
    if not methods or not config.masks:
        raise UsageError("--methods and --masks (or a --protocol) each need at least one name")
    started = time.perf_counter()
    try:
        result = run_benchmark(config)
    except KeyboardInterrupt as exc:  # Ctrl-C: 130; SIGTERM: 143 and SIGHUP: 129 (128 + signal)
        cause = f" by {exc.signal_name}" if hasattr(exc, "signal_name") else ""
        print(
            f"interrupted{cause}: finished records are saved; rerun the same command to resume",
            file=sys.stderr,
        )
        return getattr(exc, "exit_code", 130)
    seconds = time.perf_counter() - started
    print(render_console(result.leaderboard, buckets=args.buckets))
    print(run_summary(result.computed, result.reused, seconds, result.run_dir))
    failures = failure_lines(result.leaderboard, result.run_dir / "records.jsonl")
    for line in failures:
        print(line, file=sys.stderr)
    for table in result.leaderboard["tables"]:
        for entry in (e for e in table["entries"] if e.get("oracle")):
            print(
                f"warning: {entry['method']} on {table['mask']} equals the ground truth in every "
                "hole: an oracle (it has seen the answers), flagged in leaderboard.json",
                file=sys.stderr,
            )
    _protocol_metrics_note(config)
    if failures and args.strict:
        print("error: --strict: some images failed (see above); exit 1", file=sys.stderr)
        return 1
    return 0

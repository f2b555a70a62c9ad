"""Command-line interface: ``python -m benchmark {list,run,train,compare,gate,report} ...``.

User errors (unknown names, bad parameters, corrupt files) print one line on stderr and exit
with the error's code (2 for usage errors, 1 for data errors); they never show a traceback.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections.abc import Sequence

from benchmark.errors import BenchmarkError, UsageError
from benchmark.registry import Registry, split_specs

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


def _summary(factory: object) -> str:
    doc = inspect.getdoc(factory) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def cmd_list(args: argparse.Namespace) -> int:
    """Print registered names with their parameters and a one-line description."""
    registries = _registries()
    kinds = [args.kind] if args.kind else list(registries)
    hidden = {"split", "size", "data_dir"}  # given by run's own options, not name:key=value
    for kind in kinds:
        registry = registries[kind]
        print(f"{kind}:")
        for name in registry.names():
            params = ", ".join(
                f"{k}={v!r}" for k, v in registry.parameters(name).items() if k not in hidden
            )
            description = _summary(registry.get(name))
            line = f"  {name}"
            if params:
                line += f" ({params})"
            if description and kind != "metrics":
                line += f": {description}"
            print(line)
    return 0


def _expand_methods(text: str) -> list[str]:
    from benchmark.method import METHODS

    specs = split_specs(text)
    if specs == ["all"]:
        return METHODS.names()
    if "all" in specs:
        raise UsageError("--methods all cannot be combined with other names")
    return specs


def cmd_run(args: argparse.Namespace) -> int:
    """Run the benchmark and print one leaderboard table per mask type."""
    from benchmark.leaderboard import render_console
    from benchmark.runner import RunConfig, default_workers, run_benchmark

    methods = _expand_methods(args.methods)
    masks = split_specs(args.masks)
    if not methods or not masks:
        raise UsageError("--methods and --masks each need at least one name")
    config = RunConfig(
        methods=methods,
        masks=masks,
        dataset=args.dataset,
        split=args.split,
        data_dir=args.data_dir,
        limit=args.limit,
        seed=args.seed,
        size=args.size,
        batch_size=args.batch_size,
        workers=args.workers if args.workers is not None else default_workers(),
        device=args.device,
        out=args.out,
        save_images=args.save_images,
        progress=not args.quiet,
    )
    try:
        result = run_benchmark(config)
    except KeyboardInterrupt:
        print(
            "interrupted: finished records are saved; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    print(render_console(result.leaderboard))
    print(
        f"{result.computed} records computed, {result.reused} reused; results in {result.run_dir}"
    )
    if result.failed:
        print(
            f"warning: {result.failed} image evaluations failed "
            f"(see 'failed' column and {result.run_dir / 'records.jsonl'})",
            file=sys.stderr,
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``benchmark`` argument parser with its subcommands."""
    from benchmark.device import DEVICE_CHOICES  # torch-free import: --help stays fast

    parser = _Parser(
        prog="python -m benchmark",
        description="inpaint-bench: benchmark image-inpainting methods on deterministic masks.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p_list = sub.add_parser(
        "list",
        help="list registered methods, masks, data sets and metrics",
        epilog=LIST_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_list.add_argument("kind", nargs="?", choices=["methods", "masks", "datasets", "metrics"])
    p_list.set_defaults(func=cmd_list)

    p_run = sub.add_parser(
        "run",
        help="evaluate methods on masks and print leaderboards",
        epilog=RUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_run.add_argument(
        "--methods",
        required=True,
        help="comma-separated methods (name or name:key=value), or 'all'",
    )
    p_run.add_argument(
        "--masks", required=True, help="comma-separated mask generators (name or name:key=value)"
    )
    p_run.add_argument(
        "--dataset",
        default="skimage-patches",
        help="data set: skimage-patches (offline default), cifar10, folder:PATH",
    )
    p_run.add_argument("--data-dir", default=None, help="where data set files live (cifar10)")
    p_run.add_argument("--split", default="test", choices=["train", "test"])
    p_run.add_argument("--limit", type=int, default=None, help="evaluate the first N images only")
    p_run.add_argument("--seed", type=int, default=0, help="mask seed (default 0)")
    p_run.add_argument(
        "--size", type=int, default=None, help="image side in pixels (default: the data set's own)"
    )
    p_run.add_argument("--batch-size", type=int, default=256)
    p_run.add_argument(
        "--workers",
        type=int,
        default=None,
        help="threads for CPU-only methods (default: all cores)",
    )
    p_run.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p_run.add_argument(
        "--out",
        default=None,
        help="run folder (default: results/runs/<dataset>-<split>-s<seed>-<hash>)",
    )
    p_run.add_argument(
        "--save-images",
        action="store_true",
        help="write original, mask and every composite as lossless PNGs",
    )
    p_run.add_argument("--quiet", action="store_true", help="no progress bars")
    p_run.set_defaults(func=cmd_run)

    from benchmark import training

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

    from benchmark import ci_gate, compare, report

    for name, module, summary in (
        ("compare", compare, "compare two leaderboards or runs: the regression gate"),
        ("gate", ci_gate, "run the CI configuration (results/ci.toml) and the regression gate"),
        ("report", report, "write a self-contained HTML report of a run"),
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse ``argv``, run the subcommand, turn user errors into one line."""
    # OpenCV logs decoder warnings on stderr; corrupt files are reported by our own one line.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # unwritable --out, full disk, unreadable path: the user's to fix
        print(f"error: {exc}", file=sys.stderr)
        return 1

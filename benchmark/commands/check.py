"""``python -m benchmark check``: the contract checks on methods, masks or data sets."""

from __future__ import annotations

import argparse

DESCRIPTION = (
    "Run the contract checks the built-ins pass on each named method, mask family or data set: "
    "shapes, types, value ranges, determinism, independence of batch composition, odd sizes "
    "and extreme masks, stable data-set indices and splits."
)
EXAMPLES = """\
examples:
  python -m benchmark check telea
  python -m benchmark check my-method my-mask my-dataset
  python -m benchmark check my-method:strength=2 my-dataset --size 64

Names are exact registered names (with optional :key=value parameters). Methods are checked with
the lines and square masks and with every mask named in the same command. One line per check;
exit 0 when all pass, 1 when any fails, 2 for an unknown name.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``check``."""
    parser.add_argument(
        "names", nargs="+", metavar="NAME", help="exact registered name, or name:key=value,..."
    )
    parser.add_argument(
        "--size", type=int, default=None, help="image side for data sets (default: their own)"
    )
    parser.add_argument(
        "--data-dir", default=None, help="where data set files live (e.g. for cifar10)"
    )
    parser.add_argument(
        "--kind",
        choices=["method", "mask", "dataset"],
        default=None,
        help="check only entries of this kind (for a name that is, e.g., a mask and a data set)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the contract checks on each named entry; one line per check."""
    from benchmark.testing import check

    results = check(args.names, size=args.size, data_dir=args.data_dir, kind=args.kind)
    for result in results:
        print(result.line())
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0

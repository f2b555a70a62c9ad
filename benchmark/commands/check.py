"""``python -m benchmark check``: the contract checks on methods, masks, data sets or metrics."""

from __future__ import annotations

import argparse

DESCRIPTION = (
    "Run the contract checks the built-ins pass on each named method, mask family, data set or "
    "per-image metric: shapes, types, value ranges, determinism, independence of batch "
    "composition, odd sizes and extreme masks, stable data-set indices and splits, a metric's "
    "declared direction."
)
EXAMPLES = """\
examples:
  python -m benchmark check telea
  python -m benchmark check my-method my-mask my-dataset
  python -m benchmark check my-method:strength=2 my-dataset --size 64
  python -m benchmark check hole_l1 my-metric ms-ssim
  python -m benchmark check lpips-alex --weights-dir weights/

Names are exact registered names (with optional :key=value parameters). Methods are checked with
the lines and square masks and with every mask named in the same command. Metrics (built-in,
plug-in, or per-image perceptual: lpips-*, ms-ssim) are checked on 6 photo patches with noise
in square holes. One line per check;
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
        choices=["method", "mask", "dataset", "metric"],
        default=None,
        help="check only entries of this kind (for a name that is, e.g., a mask and a data set)",
    )
    parser.add_argument(
        "--weights-dir",
        default=None,
        help="folder of the LPIPS weight files under their reference names (as run's)",
    )
    parser.add_argument(
        "--allow-unverified-weights",
        action="store_true",
        help="accept weight files whose checksum differs from the published one (as run's)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the contract checks on each named entry; one line per check."""
    from benchmark.testing import check

    results = check(
        args.names,
        size=args.size,
        data_dir=args.data_dir,
        kind=args.kind,
        weights_dir=args.weights_dir,
        allow_unverified=args.allow_unverified_weights,
    )
    for result in results:
        print(result.line())
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0

"""``python -m benchmark report RUN_DIR``: one self-contained HTML report of a run.

The file embeds everything (PNG images as ``data:`` URIs, inline CSS, no scripts, no links to
other files or sites), so it opens offline and can be mailed or attached to a CI job. It shows
the leaderboard tables exactly as ranked in ``leaderboard.json`` (on the images every ranked
method completed; ``≈`` = not significantly different from the leader, ``†`` = incomplete,
``–`` = unranked, failures beside the ranking, the verdict line), sample grids, PSNR versus mask
ratio over the same NVIDIA bins as the bucket tables (matplotlib), the mask-ratio buckets, the
paired comparisons of the ranked methods, the method time per image, each method's parameters
and fingerprint (code and weights hash), and the run's configuration and versions
(``run.json``) as readable values. Every method keeps one colour throughout (plot, legend,
tables, grids), in the run's method order, and grid columns follow that order for every mask.

**Sample grids** show the same fixed images for every mask type: the first ``--samples``
indices (default 8) with original, masked input (holes magenta) and every method's result, so
the report stays small for any run size. They come from the run's PNGs when it was made with
``--save-images``; otherwise they are recomputed by running the methods on those few images
through the registries (same data set, masks, seed, and the pipeline's own composite and
measuring). A recomputed image whose PSNR differs from the run's record (the method changed
since) is flagged.

The work is split by job: :mod:`~benchmark.commands.report_data` reads and checks the run's
files (a tampered or foreign file is one line and exit 1), :mod:`~benchmark.commands.report_samples`
makes the grids, :mod:`~benchmark.commands.report_images` encodes images and draws the plot,
and :mod:`~benchmark.commands.report_render` fills the Jinja2 templates of ``report_templates/``
(autoescaped).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.commands.report_render import DEFAULT_SAMPLES, build_report
from benchmark.errors import UsageError
from benchmark.records import write_atomic

__all__ = ["EXAMPLES", "add_arguments", "build_report", "run"]

EXAMPLES = """\
examples:
  python -m benchmark run --methods telea,ns,diffusion --masks lines,square --limit 500 --out r
  python -m benchmark report r                    # writes r/report.html
  python -m benchmark report r --out /tmp/report.html --samples 4
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``report``."""
    parser.add_argument("run_dir", help="a run directory (with leaderboard.json)")
    parser.add_argument("--out", default=None, help="HTML file (default RUN_DIR/report.html)")
    parser.add_argument(
        "--samples",
        type=int,
        default=DEFAULT_SAMPLES,
        help=f"images per sample grid, the first indices (default {DEFAULT_SAMPLES})",
    )


def run(args: argparse.Namespace) -> int:
    """``report`` subcommand: write the HTML file and print its path."""
    if args.samples < 0:
        raise UsageError(f"--samples must be >= 0, got {args.samples}")
    out = Path(args.out) if args.out else Path(args.run_dir) / "report.html"
    text = build_report(args.run_dir, args.samples)
    write_atomic(out, text)
    print(f"report written to {out} ({len(text.encode()) / 1024:.0f} kB)")
    return 0

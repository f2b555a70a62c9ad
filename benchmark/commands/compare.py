"""``python -m benchmark compare BASELINE NEW``: the regression gate between two leaderboards.

BASELINE is a baseline file written by ``--update`` (or a run directory); NEW is a run
directory (or a baseline file). For every mask and method the gate shows the mean PSNR and SSIM
of both sides on the images both measured, their difference and a marker, and exits

- **0**: no regression;
- **1**: a regression, and only then: a method/mask pair got worse by more than the tolerance
  (``--tolerance-db``, ``--tolerance-ssim``) **and** the drop is significant (``p < 0.05``), or
  it failed more images than before, or it no longer measures an image the baseline measured;
- **2**: the gate cannot decide, and **fails closed**: a missing, unreadable or malformed file;
  per-image values missing, NaN or inconsistent with the leaderboard on either side (a baseline
  without a ``per_image`` section, a run folder without ``records.jsonl`` or ``run.json``, an
  unfinished run); different configurations (data set, split, size, seed, number of images,
  mask parameters); an empty or partial baseline (no tables, a table without entries, an entry
  that does not cover every image) unless ``--allow-missing``; baseline entries missing from
  NEW unless ``--allow-missing``; nothing compared at all.

The package version may differ (that is what the gate compares).

**The paired test.** Both sides were measured on the same images with the same holes, so the
drop is tested image by image on the images both sides measured: the Wilcoxon signed-rank test
on the per-image differences NEW − BASELINE, with a bootstrap 95 % CI of their mean
(:mod:`benchmark.significance`). A run directory supplies its per-image values from
``records.jsonl`` (the records of the exact method version its leaderboard reports). A
committed baseline has no records, so ``--update`` embeds them:
``per_image[mask][method] = {"psnr": [...], "ssim": [...]}``, one value per image index
(``null`` = not measured: the image failed), rounded to 4 decimals (1e-4 dB, 1e-4 SSIM: far
below both tolerances). Both sides are compared at that precision, so an unchanged method
differs by exactly 0. There is no unpaired fallback: without per-image values on both sides
the gate exits 2.

``--update`` deliberately rewrites BASELINE from NEW (a complete run directory), atomically,
with the package version, the run command that reproduces it, the command that wrote it, and
the plug-in packages and versions the run recorded.
"""

from __future__ import annotations

import argparse
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from benchmark.commands.baseline import PER_IMAGE_DECIMALS, write_baseline
from benchmark.commands.sides import (
    GATED_METRICS,
    Side,
    baseline_gaps,
    check_comparable,
    check_complete_run,
    load_for_gate,
)
from benchmark.errors import BenchmarkError, UsageError
from benchmark.significance import SIGNIFICANCE_LEVEL, Series, common_values, compare_series

DEFAULT_TOLERANCE_DB = 0.05
DEFAULT_TOLERANCE_SSIM = 0.001

EXAMPLES = """\
examples:
  python -m benchmark compare results/baseline.json results/runs/ci
  python -m benchmark compare old-run/ new-run/ --tolerance-db 0.1
  python -m benchmark compare results/baseline.json results/runs/ci --allow-missing
  python -m benchmark compare results/baseline.json results/runs/ci --update   # new baseline

Exit status: 0 no regression; 1 a regression (and only that); 2 the gate cannot decide:
missing, NaN or unreadable per-image data on either side, an unfinished run, different
configurations, an empty or partial baseline, or entries missing from NEW (--allow-missing
accepts the last two).
"""


# -- comparison -------------------------------------------------------------------------------
@dataclass
class MetricDelta:
    """One metric of one entry, on the images both sides measured: means, change, test."""

    base: float | None  # mean of the baseline on the paired images
    new: float | None
    delta: float  # NEW - BASELINE, mean over the paired images
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    verdict: str  # "worse", "worse (n.s.)", "better", "same"


@dataclass
class EntryComparison:
    mask: str
    method: str
    status: str  # "compared", "new", "missing"
    metrics: dict[str, MetricDelta] = field(default_factory=dict)
    failed_before: int = 0
    failed_now: int = 0
    lost: int = 0  # images the baseline measured that NEW did not
    new_entry: dict[str, Any] | None = None

    @property
    def regression(self) -> bool:
        """Worse beyond tolerance and significant, more failures, or images no longer measured."""
        worse = any(d.verdict == "worse" for d in self.metrics.values())
        return self.status == "compared" and (
            worse or self.failed_now > self.failed_before or self.lost > 0
        )

    @property
    def marker(self) -> str:
        if self.status == "new":
            return "new"
        if self.status == "missing":
            return "MISSING"
        if self.regression:
            extra = self.failed_now - self.failed_before
            notes = [f"+{extra} failed"] if extra > 0 else []
            notes += [f"{self.lost} images no longer measured"] if self.lost > 0 else []
            return "▼ REGRESSION" + (f" ({', '.join(notes)})" if notes else "")
        verdicts = {d.verdict for d in self.metrics.values()}
        if "better" in verdicts:
            return "▲ better"
        if "worse (n.s.)" in verdicts:
            return "worse, n.s."
        return "ok"


def _mean(entry: dict[str, Any], metric: str) -> float | None:
    value = (entry.get("metrics", {}).get(metric) or {}).get("mean")
    return float(value) if value is not None and entry.get("n") else None


def _verdict(delta: float, p_value: float, tolerance: float) -> str:
    if not math.isfinite(delta):  # fail closed: an unmeasurable change is never "same"
        return "worse"
    significant = p_value < SIGNIFICANCE_LEVEL
    if -delta > tolerance:
        return "worse" if significant else "worse (n.s.)"
    if delta > tolerance and significant:
        return "better"
    return "same"


def _rounded(series: Series, metric: str) -> Series:
    return {"index": series["index"], metric: np.round(series[metric], PER_IMAGE_DECIMALS)}


def compare_metric(base: Series, new: Series, metric: str, tolerance: float) -> MetricDelta:
    """Compare one metric image by image on the images both sides measured.

    Both sides at the baseline's precision: an unchanged method differs by exactly 0. When
    neither side measured any image the metric is "same" (nothing changed); when only one did,
    the failures decide (see :attr:`EntryComparison.regression`).
    """
    base_r, new_r = _rounded(base, metric), _rounded(new, metric)
    values_new, values_base = common_values(new_r, base_r, metric)
    d = compare_series(new_r, base_r, metric)
    if d.n == 0:
        nan = float("nan")
        verdict = "same" if not len(base["index"]) else "worse"
        return MetricDelta(None, None, nan, nan, nan, nan, 0, verdict)
    verdict = _verdict(d.mean, d.p_value, tolerance)
    return MetricDelta(
        float(values_base.mean()),
        float(values_new.mean()),
        d.mean,
        d.ci_low,
        d.ci_high,
        d.p_value,
        d.n,
        verdict,
    )


def compare_sides(
    base: Side,
    new: Side,
    tolerance_db: float = DEFAULT_TOLERANCE_DB,
    tolerance_ssim: float = DEFAULT_TOLERANCE_SSIM,
) -> list[EntryComparison]:
    """Every (mask, method) of either side, in the baseline's order, new entries last.

    Both sides must hold per-image values of every entry (:func:`load_side` makes sure).
    """
    tolerances = {"psnr": tolerance_db, "ssim": tolerance_ssim}
    base_entries, new_entries = base.entries(), new.entries()
    results = []
    for key, base_entry in base_entries.items():
        mask, method = key
        new_entry = new_entries.get(key)
        if new_entry is None:
            results.append(EntryComparison(mask, method, "missing"))
            continue
        base_series, new_series = _series_of(base, key), _series_of(new, key)
        row = EntryComparison(
            mask,
            method,
            "compared",
            failed_before=int(base_entry["failed"]),
            failed_now=int(new_entry["failed"]),
            lost=len(np.setdiff1d(base_series["index"], new_series["index"])),
            new_entry=new_entry,
        )
        for metric in GATED_METRICS:
            row.metrics[metric] = compare_metric(
                base_series, new_series, metric, tolerances[metric]
            )
        results.append(row)
    for key, new_entry in new_entries.items():
        if key not in base_entries:
            results.append(EntryComparison(*key, "new", new_entry=new_entry))
    return results


def _series_of(side: Side, key: tuple[str, str]) -> Series:
    """Per-image values of an entry; an entry without any measured image has empty arrays."""
    series = (side.series or {}).get(key)
    if series is not None:
        return series
    empty = np.array([], dtype=float)
    return {"index": np.array([], dtype=np.int64)} | {m: empty for m in GATED_METRICS}


# -- rendering --------------------------------------------------------------------------------
def _number(value: float | None, decimals: int, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    if abs(value) < 0.5 * 10**-decimals:
        value = 0.0  # no "-0.000"
    return f"{value:+.{decimals}f}" if sign else f"{value:.{decimals}f}"


def _p(value: float) -> str:
    if not math.isfinite(value):
        return "—"
    return "<1e-4" if value < 1e-4 else f"{value:.4f}"


def render_comparison(results: list[EntryComparison]) -> str:
    """One plain-text table per mask: baseline, new, delta and p per metric, then a marker."""
    header = ["method"]
    for label, _ in GATED_METRICS.values():
        header += [f"{label} base", f"{label} new", f"Δ {label}", "p"]
    header += ["n", "marker"]
    parts = []
    for mask in dict.fromkeys(r.mask for r in results):
        rows = []
        for r in (r for r in results if r.mask == mask):
            cells: list[Any] = [r.method]
            for metric, (_, decimals) in GATED_METRICS.items():
                d = r.metrics.get(metric)
                if d is None:
                    new = _mean(r.new_entry, metric) if r.new_entry else None
                    cells += ["—", _number(new, decimals), "—", "—"]
                else:
                    delta = _number(d.delta, decimals + 1, sign=True)
                    cells += [
                        _number(d.base, decimals),
                        _number(d.new, decimals),
                        delta,
                        _p(d.p_value),
                    ]
            n = r.metrics["psnr"].n if "psnr" in r.metrics else (r.new_entry or {}).get("n", "—")
            rows.append([*cells, n, r.marker])
        parts += [
            f"mask: {mask}",
            tabulate(rows, headers=header, tablefmt="simple", disable_numparse=True),
            "",
        ]
    return "\n".join(parts)


def summary_lines(
    results: list[EntryComparison], tolerance_db: float, tolerance_ssim: float, allow_missing: bool
) -> tuple[list[str], int]:
    """Explanation and verdict lines under the tables, and the exit status (0, 1 or 2)."""
    regressions = [r for r in results if r.regression]
    missing = [r for r in results if r.status == "missing"]
    new = [r for r in results if r.status == "new"]
    compared = [r for r in results if r.status == "compared"]
    lines = [
        "Δ = NEW − BASELINE on the images both measured; p = Wilcoxon signed-rank test on the "
        f"per-image differences; REGRESSION = drop > {tolerance_db:g} dB PSNR or "
        f"> {tolerance_ssim:g} SSIM with p < {SIGNIFICANCE_LEVEL:g}, more failed images, or "
        "images the baseline measured that are no longer measured."
    ]
    if new:
        lines.append("new entries: " + ", ".join(f"{r.method}/{r.mask}" for r in new))
    if missing:
        names = ", ".join(f"{r.method}/{r.mask}" for r in missing)
        fix = (
            "(allowed by --allow-missing)" if allow_missing else "(pass --allow-missing to accept)"
        )
        lines.append(f"missing from NEW: {names} {fix}")
    if regressions:
        names = ", ".join(f"{r.method}/{r.mask}" for r in regressions)
        lines.append(f"gate: FAIL — {len(regressions)} regression(s): {names}")
        return lines, 1
    if missing and not allow_missing:
        lines.append(
            f"gate: ERROR — {len(missing)} baseline entries missing from NEW: cannot decide"
        )
        return lines, 2
    if not compared:
        lines.append("gate: ERROR — nothing compared: cannot decide")
        return lines, 2
    lines.append(f"gate: PASS — {len(compared)} entries compared, no regression")
    return lines, 0


# -- command ----------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``compare``."""
    parser.add_argument("baseline", help="baseline leaderboard.json (or run directory)")
    parser.add_argument("new", help="new run directory (or leaderboard.json)")
    parser.add_argument(
        "--tolerance-db",
        type=float,
        default=DEFAULT_TOLERANCE_DB,
        help=f"largest PSNR drop (dB) that never fails (default {DEFAULT_TOLERANCE_DB})",
    )
    parser.add_argument(
        "--tolerance-ssim",
        type=float,
        default=DEFAULT_TOLERANCE_SSIM,
        help=f"largest SSIM drop that never fails (default {DEFAULT_TOLERANCE_SSIM})",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="baseline entries missing from NEW do not fail the gate",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="rewrite BASELINE from NEW (a run directory) instead of gating",
    )


def gate(
    baseline: str | Path,
    new: str | Path,
    tolerance_db: float = DEFAULT_TOLERANCE_DB,
    tolerance_ssim: float = DEFAULT_TOLERANCE_SSIM,
    allow_missing: bool = False,
    update: bool = False,
    update_command: str | None = None,
) -> int:
    """Compare (print the tables) and return the exit status; or rewrite the baseline.

    Whatever is not a regression never returns 1: problems with the inputs raise a
    :class:`UsageError` (exit 2), see the module docstring.
    """
    for name, value in (("--tolerance-db", tolerance_db), ("--tolerance-ssim", tolerance_ssim)):
        if not value >= 0:
            raise UsageError(f"{name} must be a number >= 0, got {value}")
    new_side = load_for_gate(new, "new")
    if update:
        command = update_command or shlex.join(
            ["python", "-m", "benchmark", "compare", str(baseline), str(new), "--update"]
        )
        written = write_baseline(baseline, new_side, command)
        print(
            f"baseline {baseline} rewritten from {new} "
            f"(inpaint-bench {written['baseline']['version']}; {written['baseline']['command']})"
        )
        return 0
    base_side = load_baseline(baseline, allow_missing)
    check_complete_run(new_side)
    check_comparable(base_side, new_side)
    results = compare_sides(base_side, new_side, tolerance_db, tolerance_ssim)
    lines, status = summary_lines(results, tolerance_db, tolerance_ssim, allow_missing)
    print(render_comparison(results))
    print("\n".join(lines))
    return status


def load_baseline(path: str | Path, allow_missing: bool = False) -> Side:
    """The baseline side, refused (exit 2) when unusable, or empty or partial without
    ``allow_missing``; an empty baseline (no entry at all) is refused even with it."""
    side = load_for_gate(path, "baseline")
    gaps = baseline_gaps(side)
    empty = not any(t["entries"] for t in side.leaderboard["tables"])
    if gaps and (empty or not allow_missing):
        shown = "; ".join(gaps[:3]) + (f"; and {len(gaps) - 3} more" if len(gaps) > 3 else "")
        hint = "" if empty else " (or pass --allow-missing)"
        raise UsageError(
            f"baseline {str(path)!r} is {'empty' if empty else 'partial'}: {shown}; regenerate "
            f"it with `python -m benchmark gate --update`{hint}"
        )
    return side


def run(args: argparse.Namespace) -> int:
    """``compare`` subcommand: exit 0 (pass), 1 (a regression) or 2 (cannot decide)."""
    return fail_closed(
        gate,
        args.baseline,
        args.new,
        args.tolerance_db,
        args.tolerance_ssim,
        args.allow_missing,
        args.update,
    )


def fail_closed(function: Any, *args: Any, **kwargs: Any) -> int:
    """Call ``function``; any error it raises becomes a one-line :class:`UsageError` (exit 2),
    so that exit 1 only ever means a regression."""
    try:
        return function(*args, **kwargs)
    except UsageError:
        raise
    except BenchmarkError as exc:  # a DataError would exit 1, the regression code
        raise UsageError(str(exc)) from None
    except RecursionError:
        raise UsageError("an input file is nested too deeply to read") from None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise UsageError(f"the gate could not run: {type(exc).__name__}: {exc}") from exc

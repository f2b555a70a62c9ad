"""``python -m benchmark compare BASELINE NEW``: the regression gate between two leaderboards.

BASELINE is a baseline file written by ``--update`` (or a run directory); NEW is a run
directory (or a baseline file). For every mask and method the gate shows the mean PSNR and SSIM
of both sides on the images both measured, their difference with its interval and p-value, the
number of broken images, and a marker, and exits

- **0**: no regression;
- **1**: a regression, and only then: a method/mask pair got worse by more than the tolerance
  (``--tolerance-db``, ``--tolerance-ssim``) **and** the drop is significant after Holm's
  correction over every comparison of the gate, or it failed more images than before, or it no
  longer measures an image the baseline measured, or (``--max-broken N``) more than N of its
  images got worse by more than ``--broken-db`` / ``--broken-ssim``;
- **2**: the gate cannot decide, and **fails closed**: a missing, unreadable or malformed file;
  per-image values missing, NaN or inconsistent with the leaderboard on either side (a baseline
  without a ``per_image`` section, a run folder without ``records.jsonl`` or ``run.json``, an
  unfinished run); different data or configurations (data set content, masks, image size,
  split, seed, protocol, number of images: :mod:`benchmark.commands.compare_data`; accepted,
  and said, with ``--allow-data-change``); an empty or partial baseline (no tables, a table
  without entries, an entry that does not cover every image) unless ``--allow-missing``;
  baseline entries missing from NEW unless ``--allow-missing``; nothing compared at all; with
  ``--fail-inconclusive``, a comparison its images cannot decide.

The package version may differ (that is what the gate compares).

**The rule** (:mod:`benchmark.decision`, the one every "better", "worse" and ``≈`` uses). Both
sides were measured on the same images with the same holes, so each entry and metric is decided
on the per-image differences NEW − BASELINE over the images both measured: their mean, a
seeded 10,000-resample bootstrap interval and its p-value. Every metric of every compared entry
is one comparison of a family, and Holm's step-down correction keeps the chance of any false
alarm in the whole gate at 5 %: each interval is printed at the level Holm tested it at, and
the printed p is Holm's adjusted p, below 0.05 exactly when that interval excludes 0. A
difference that is not significant is ``ok`` when its interval lies inside the tolerance and
``inconclusive`` (with the images that would decide it) when it reaches beyond. A run directory
supplies its per-image values from ``records.jsonl`` (the records of the exact method version
its leaderboard reports). A committed baseline has no records, so ``--update`` embeds them:
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from benchmark.commands.baseline import PER_IMAGE_DECIMALS, write_baseline
from benchmark.commands.compare_data import check_same_data
from benchmark.commands.sides import (
    GATED_METRICS,
    Side,
    baseline_gaps,
    check_complete_run,
    load_for_gate,
    parse_pairs,
    rename_methods,
)
from benchmark.decision import (
    ALPHA,
    BETTER,
    BROKEN_AT,
    INCONCLUSIVE,
    TOLERANCES,
    WORSE,
    Decision,
    ResampleCounts,
    decide_family,
    signed,
)
from benchmark.errors import BenchmarkError, UsageError
from benchmark.significance import Series, common_values

DEFAULT_TOLERANCE_DB = TOLERANCES["psnr"]
DEFAULT_TOLERANCE_SSIM = TOLERANCES["ssim"]
DEFAULT_BROKEN_DB = BROKEN_AT["psnr"]
DEFAULT_BROKEN_SSIM = BROKEN_AT["ssim"]

EXAMPLES = """\
examples:
  python -m benchmark compare results/baseline.json results/runs/ci
  python -m benchmark compare old-run/ new-run/ --tolerance-db 0.1
  python -m benchmark compare old-run/ new-run/ --max-broken 0 --fail-inconclusive
  python -m benchmark compare results/baseline.json results/runs/ci --allow-missing
  python -m benchmark compare results/baseline.json results/runs/ci --update   # new baseline

Exit status: 0 no regression; 1 a regression (and only that); 2 the gate cannot decide:
missing, NaN or unreadable per-image data on either side, an unfinished run, different data
or configurations (--allow-data-change compares anyway), an empty or partial baseline, entries
missing from NEW (--allow-missing accepts the last two), or, with --fail-inconclusive, a
comparison the images cannot decide.
"""


@dataclass(frozen=True)
class Rules:
    """What the gate calls a regression (see the module docstring)."""

    tolerance_db: float = DEFAULT_TOLERANCE_DB
    tolerance_ssim: float = DEFAULT_TOLERANCE_SSIM
    broken_db: float = DEFAULT_BROKEN_DB
    broken_ssim: float = DEFAULT_BROKEN_SSIM
    max_broken: int | None = None
    fail_inconclusive: bool = False
    alpha: float = ALPHA

    def tolerance(self, metric: str) -> float:
        return {"psnr": self.tolerance_db, "ssim": self.tolerance_ssim}[metric]

    def broken_at(self, metric: str) -> float:
        return {"psnr": self.broken_db, "ssim": self.broken_ssim}[metric]

    def check(self) -> None:
        """Refuse values that make no rule (a UsageError, exit 2)."""
        for name in ("tolerance_db", "tolerance_ssim", "broken_db", "broken_ssim"):
            value = getattr(self, name)
            if not value >= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be a number >= 0, got {value}")
        if self.max_broken is not None and self.max_broken < 0:
            raise UsageError(f"--max-broken must be an integer >= 0, got {self.max_broken}")


# -- comparison -------------------------------------------------------------------------------
@dataclass
class MetricDelta:
    """One metric of one entry, on the images both sides measured: means and the decision."""

    base: float | None  # mean of the baseline on the paired images
    new: float | None
    decision: Decision | None  # on NEW - BASELINE; None: no image paired
    regression: bool = False  # a significant drop beyond the tolerance, or unmeasurable

    @property
    def delta(self) -> float:
        return self.decision.difference if self.decision else math.nan

    @property
    def n(self) -> int:
        return self.decision.n if self.decision else 0


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
    max_broken: int | None = None

    @property
    def too_broken(self) -> bool:
        """More images broken than ``max_broken`` allows, in any metric."""
        return self.max_broken is not None and any(
            d.decision is not None and d.decision.n_broken > self.max_broken
            for d in self.metrics.values()
        )

    @property
    def regression(self) -> bool:
        """A significant drop beyond the tolerance, more failures, images no longer measured,
        or too many broken images."""
        return self.status == "compared" and (
            any(d.regression for d in self.metrics.values())
            or self.failed_now > self.failed_before
            or self.lost > 0
            or self.too_broken
        )

    def verdicts(self) -> set[str]:
        return {d.decision.verdict for d in self.metrics.values() if d.decision is not None}

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
            notes += [f"over {self.max_broken} broken"] if self.too_broken else []
            return "▼ REGRESSION" + (f" ({', '.join(notes)})" if notes else "")
        verdicts = self.verdicts()
        if WORSE in verdicts:
            return "worse, within tolerance"
        if BETTER in verdicts:
            return "▲ better"
        if INCONCLUSIVE in verdicts:
            return "inconclusive"
        return "ok"


def _mean(entry: dict[str, Any], metric: str) -> float | None:
    value = (entry.get("metrics", {}).get(metric) or {}).get("mean")
    return float(value) if value is not None and entry.get("n") else None


def _rounded(series: Series, metric: str) -> Series:
    return {"index": series["index"], metric: np.round(series[metric], PER_IMAGE_DECIMALS)}


def paired_values(base: Series, new: Series, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(base, new)`` values of ``metric`` on the images both measured, at the baseline's
    precision: an unchanged method differs by exactly 0."""
    return common_values(_rounded(base, metric), _rounded(new, metric), metric)


def compare_sides(base: Side, new: Side, rules: Rules | None = None) -> list[EntryComparison]:
    """Every (mask, method) of either side, in the baseline's order, new entries last.

    Both sides must hold per-image values of every entry (:func:`load_side` makes sure). Every
    metric of every compared entry is one member of the family that Holm's correction covers
    (:func:`benchmark.decision.decide_family`). When neither side measured any image of an
    entry the metric is "same"; when only the baseline did, it fails closed (a regression).
    """
    rules = rules or Rules()
    base_entries, new_entries = base.entries(), new.entries()
    results, family = [], []
    for key, base_entry in base_entries.items():
        new_entry = new_entries.get(key)
        if new_entry is None:
            results.append(EntryComparison(*key, "missing"))
            continue
        base_series, new_series = _series_of(base, key), _series_of(new, key)
        row = EntryComparison(
            *key,
            "compared",
            failed_before=int(base_entry["failed"]),
            failed_now=int(new_entry["failed"]),
            lost=len(np.setdiff1d(base_series["index"], new_series["index"])),
            new_entry=new_entry,
            max_broken=rules.max_broken,
        )
        for metric in GATED_METRICS:
            before, after = paired_values(base_series, new_series, metric)
            if len(before):
                family.append((row, metric, before, after))
            else:  # nothing paired: fail closed when the baseline had images
                unmeasurable = len(base_series["index"]) > 0
                row.metrics[metric] = MetricDelta(None, None, None, regression=unmeasurable)
        results.append(row)
    decisions = decide_family(
        [after - before for _, _, before, after in family],
        tolerance=[rules.tolerance(metric) for _, metric, _, _ in family],
        broken_at=[rules.broken_at(metric) for _, metric, _, _ in family],
        alpha=rules.alpha,
        counts=ResampleCounts(),
    )
    for (row, metric, before, after), decision in zip(family, decisions):
        drop = decision.significant and decision.difference < -rules.tolerance(metric)
        row.metrics[metric] = MetricDelta(
            float(before.mean()), float(after.mean()), decision, regression=drop
        )
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


def _interval(decision: Decision, decimals: int) -> str:
    if not (math.isfinite(decision.ci_low) and math.isfinite(decision.ci_high)):
        return "unbounded"
    return f"{signed(decision.ci_low, decimals)} to {signed(decision.ci_high, decimals)}"


def _p(decision: Decision) -> str:
    """Holm's adjusted p-value (below alpha exactly when the interval excludes 0)."""
    p = decision.p_adjusted if decision.p_adjusted is not None else decision.p
    if decision.p_is_bound:
        return f"≤{math.ceil(p * 1e4) / 1e4:.4f}"
    return "<1e-4" if p < 1e-4 else f"{p:.4f}"


def render_comparison(results: list[EntryComparison]) -> str:
    """One plain-text table per mask: per metric the baseline and new means, the change with
    its interval, Holm's p and the broken images; then the image count and a marker."""
    header = ["method"]
    for label, _ in GATED_METRICS.values():
        header += [f"{label} base", f"{label} new", f"Δ {label}", "CI", "p", "broken"]
    header += ["n", "marker"]
    parts = []
    for mask in dict.fromkeys(r.mask for r in results):
        rows = []
        for r in (r for r in results if r.mask == mask):
            cells: list[Any] = [r.method]
            for metric, (_, decimals) in GATED_METRICS.items():
                d = r.metrics.get(metric)
                if d is None or d.decision is None:
                    new = _mean(r.new_entry, metric) if r.new_entry else None
                    cells += ["—", _number(new, decimals), "—", "—", "—", "—"]
                    continue
                cells += [
                    _number(d.base, decimals),
                    _number(d.new, decimals),
                    _number(d.delta, decimals + 1, sign=True),
                    _interval(d.decision, decimals),
                    _p(d.decision),
                    d.decision.n_broken,
                ]
            n = r.metrics["psnr"].n if "psnr" in r.metrics else (r.new_entry or {}).get("n", "—")
            rows.append([*cells, n, r.marker])
        parts += [
            f"mask: {mask}",
            tabulate(rows, headers=header, tablefmt="simple", disable_numparse=True),
            "",
        ]
    return "\n".join(parts)


def explanation(results: list[EntryComparison], rules: Rules) -> str:
    """The line under the tables that says what every column and marker means."""
    decided = [d.decision for r in results for d in r.metrics.values() if d.decision]
    broken = (
        f", or more than {rules.max_broken} broken images" if rules.max_broken is not None else ""
    )
    return (
        "Δ = NEW − BASELINE, mean over the images both measured; CI = its bootstrap confidence "
        f"interval at the level Holm's correction tested it ({len(decided)} comparisons, "
        f"family-wise α = {rules.alpha:g}); p = Holm-adjusted bootstrap p, below {rules.alpha:g} "
        "exactly when the CI excludes 0; broken = images worse by more than "
        f"{rules.broken_db:g} dB PSNR / {rules.broken_ssim:g} SSIM. REGRESSION = a significant "
        f"drop larger than {rules.tolerance_db:g} dB PSNR or {rules.tolerance_ssim:g} SSIM, more "
        f"failed images, images the baseline measured that are no longer measured{broken}."
    )


def summary_lines(
    results: list[EntryComparison], rules: Rules, allow_missing: bool
) -> tuple[list[str], int]:
    """Explanation and verdict lines under the tables, and the exit status (0, 1 or 2)."""
    regressions = [r for r in results if r.regression]
    missing = [r for r in results if r.status == "missing"]
    new = [r for r in results if r.status == "new"]
    compared = [r for r in results if r.status == "compared"]
    open_ = [
        (r, metric, d.decision)
        for r in compared
        for metric, d in r.metrics.items()
        if d.decision is not None and d.decision.verdict == INCONCLUSIVE
    ]
    lines = [explanation(results, rules)]
    if new:
        lines.append("new entries: " + ", ".join(f"{r.method}/{r.mask}" for r in new))
    if missing:
        names = ", ".join(f"{r.method}/{r.mask}" for r in missing)
        fix = (
            "(allowed by --allow-missing)" if allow_missing else "(pass --allow-missing to accept)"
        )
        lines.append(f"missing from NEW: {names} {fix}")
    if open_:
        named = ", ".join(
            f"{r.method}/{r.mask} {GATED_METRICS[m][0]}"
            + (f" (about {d.images_needed:,} images would decide it)" if d.images_needed else "")
            for r, m, d in open_
        )
        lines.append(f"inconclusive (the CI includes 0 and reaches beyond the tolerance): {named}")
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
    if open_ and rules.fail_inconclusive:
        lines.append(
            f"gate: ERROR — {len(open_)} comparison(s) inconclusive (--fail-inconclusive): "
            "cannot decide"
        )
        return lines, 2
    lines.append(f"gate: PASS — {len(compared)} entries compared, no regression")
    return lines, 0


# -- command ----------------------------------------------------------------------------------
def add_rule_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the gate's rule, shared by ``compare`` and ``gate``."""
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
        "--broken-db",
        type=float,
        default=DEFAULT_BROKEN_DB,
        help=f"an image is broken when its PSNR drops by more (default {DEFAULT_BROKEN_DB:g} dB)",
    )
    parser.add_argument(
        "--broken-ssim",
        type=float,
        default=DEFAULT_BROKEN_SSIM,
        help=f"an image is broken when its SSIM drops by more (default {DEFAULT_BROKEN_SSIM:g})",
    )
    parser.add_argument(
        "--max-broken",
        type=int,
        default=None,
        metavar="N",
        help="fail when an entry has more than N broken images (default: counted, not a rule)",
    )
    parser.add_argument(
        "--fail-inconclusive",
        action="store_true",
        help="exit 2 when a comparison is inconclusive (too few images to tell)",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="baseline entries missing from NEW do not fail the gate",
    )
    parser.add_argument(
        "--allow-data-change",
        action="store_true",
        help="compare even when the data differ (data set, masks, size, seed, ...); says so",
    )


def rule_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`gate` from the options of :func:`add_rule_arguments`."""
    return {
        "tolerance_db": args.tolerance_db,
        "tolerance_ssim": args.tolerance_ssim,
        "allow_missing": args.allow_missing,
        "broken_db": args.broken_db,
        "broken_ssim": args.broken_ssim,
        "max_broken": args.max_broken,
        "fail_inconclusive": args.fail_inconclusive,
        "allow_data_change": args.allow_data_change,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``compare``."""
    parser.add_argument("baseline", help="baseline leaderboard.json (or run directory)")
    parser.add_argument("new", help="new run directory (or leaderboard.json)")
    parser.add_argument(
        "--pair",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="compare the baseline's method OLD with NEW's method NEW (a renamed method); "
        "repeatable",
    )
    add_rule_arguments(parser)
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
    *,
    broken_db: float = DEFAULT_BROKEN_DB,
    broken_ssim: float = DEFAULT_BROKEN_SSIM,
    max_broken: int | None = None,
    fail_inconclusive: bool = False,
    allow_data_change: bool = False,
    pairs: Sequence[str] = (),
) -> int:
    """Compare (print the tables) and return the exit status; or rewrite the baseline.

    Whatever is not a regression never returns 1: problems with the inputs raise a
    :class:`UsageError` (exit 2), see the module docstring.
    """
    rules = Rules(tolerance_db, tolerance_ssim, broken_db, broken_ssim, max_broken,
                  fail_inconclusive)  # fmt: skip
    rules.check()
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
    notes = rename_methods(new_side, parse_pairs(pairs))
    notes += check_same_data(base_side, new_side, allow_data_change)
    results = compare_sides(base_side, new_side, rules)
    lines, status = summary_lines(results, rules, allow_missing)
    print(render_comparison(results))
    print("\n".join(notes + lines))
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
        gate, args.baseline, args.new, update=args.update, pairs=args.pair, **rule_options(args)
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

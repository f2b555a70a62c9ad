"""``python -m benchmark compare BASELINE NEW``: the regression gate between two leaderboards.

BASELINE is a baseline file written by ``--update`` (or a run directory); NEW is a run
directory (or a baseline file). For every mask and method the gate shows, per gated metric (PSNR,
SSIM and those of ``--metrics``: :mod:`benchmark.commands.gate_rules`), the means of both sides
on the images both measured (a set metric such as FID: its values on the baseline's images,
:mod:`benchmark.commands.set_gate`), their difference with its interval and p-value, the number
of broken images, and a marker, and exits

- **0**: no regression;
- **1**: a regression, and only then: a method/mask pair got worse in a gated metric (in its
  own direction) by more than the tolerance (``--tolerance-db``, ``--tolerance-ssim``,
  ``--tolerance METRIC=VALUE``) **and** the change is significant after Holm's
  correction over every comparison of the gate, or it failed more images than before, or it no
  longer measures an image the baseline measured, or (``--max-broken N``) more than N of its
  images got worse by more than ``--broken-db`` / ``--broken-ssim``;
- **2**: the gate cannot decide, and **fails closed**: a missing, unreadable or malformed file;
  per-image values missing, NaN or inconsistent with the leaderboard on either side (a baseline
  without a ``per_image`` section, a run folder without ``records.jsonl`` or ``run.json``, an
  unfinished run, a gated metric either side did not measure, a set metric a run folder has no
  stored features for or a baseline no ``per_set`` replicates for); different data or
  configurations (data set content, masks, image size, split, seed, protocol, number of
  images: :mod:`benchmark.commands.compare_data`; accepted, and said, with
  ``--allow-data-change``); an empty or partial baseline (no tables, a table
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
``per_image[mask][method] = {"psnr": [...], "ssim": [...], ...}`` for every gated metric, one
value per image index (``null`` = not measured: the image failed), rounded to 4 decimals (1e-4
dB, 1e-4 SSIM: far below both tolerances). Both sides are compared at that precision, so an
unchanged method differs by exactly 0. There is no unpaired fallback: without per-image values
on both sides the gate exits 2. A set metric (FID, fid-clean, KID) is decided on a paired
bootstrap over images instead, in the same family: ``--update`` embeds its replicates
(``per_set``), see :mod:`benchmark.commands.set_gate`.

``--update`` deliberately rewrites BASELINE from NEW (a complete run directory), atomically,
with the package version, the run command that reproduces it, the command that wrote it, and
the plug-in packages and versions the run recorded.
"""

from __future__ import annotations

import argparse
import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.commands.baseline import PER_IMAGE_DECIMALS, write_baseline
from benchmark.commands.compare_data import check_same_data
from benchmark.commands.compare_render import render_comparison, summary_lines
from benchmark.commands.gate_rules import (
    DEFAULT_BROKEN_DB,
    DEFAULT_BROKEN_SSIM,
    DEFAULT_TOLERANCE_DB,
    DEFAULT_TOLERANCE_SSIM,
    Rules,
    add_rule_arguments,
    gated_metrics,
    rule_options,
)
from benchmark.commands.set_gate import SetPair, resamples_for, set_pair
from benchmark.commands.sides import (
    Side,
    baseline_gaps,
    check_complete_run,
    load_for_gate,
    parse_pairs,
    rename_methods,
)
from benchmark.decision import (
    BETTER,
    INCONCLUSIVE,
    WORSE,
    Decision,
    ResampleCounts,
    decide_family,
)
from benchmark.errors import BenchmarkError, UsageError
from benchmark.significance import Series, common_values

__all__ = ["Rules", "add_rule_arguments", "render_comparison", "rule_options", "summary_lines"]

EXAMPLES = """\
examples:
  python -m benchmark compare results/baseline.json results/runs/ci
  python -m benchmark compare old-run/ new-run/ --tolerance-db 0.1
  python -m benchmark compare old-run/ new-run/ --metrics lpips-alex --tolerance lpips-alex=0.002
  python -m benchmark compare old-run/ new-run/ --metrics fid,kid   # runs asked for fid,kid
  python -m benchmark compare old-run/ new-run/ --max-broken 0 --fail-inconclusive
  python -m benchmark compare results/baseline.json results/runs/ci --allow-missing
  python -m benchmark compare results/baseline.json results/runs/ci --update   # new baseline

The gate decides on PSNR, SSIM and every metric --metrics names (built-in, plug-in or
perceptual per-image metrics; FID, fid-clean and KID through a paired bootstrap over images;
each in its own direction). Exit status: 0 no regression; 1 a regression (and
only that); 2 the gate cannot decide: missing, NaN or unreadable per-image data on either side
(a gated metric either side did not measure included), an unfinished run, different data or
configurations (--allow-data-change compares anyway), an empty or partial baseline, entries
missing from NEW (--allow-missing accepts the last two), or, with --fail-inconclusive, a
comparison the images cannot decide.
"""


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
    (:func:`benchmark.decision.decide_family`); a set metric (FID, KID) is decided on its
    paired bootstrap replicates over the baseline's images
    (:mod:`benchmark.commands.set_gate`). When neither side measured any image of an
    entry the metric is "same"; when only the baseline did, it fails closed (a regression).
    Each metric is decided in its own direction: a lower-is-better metric's change for the
    worse is a rise. The printed change and interval stay NEW − BASELINE.
    """
    rules = rules or Rules()
    base_entries, new_entries = base.entries(), new.entries()
    results, family = [], []
    resamples = resamples_for(len(base_entries.keys() & new_entries.keys()) * len(rules.names))
    for key, base_entry in base_entries.items():
        new_entry = new_entries.get(key)
        if new_entry is None:
            results.append(EntryComparison(*key, "missing"))
            continue
        base_series = _series_of(base, key, rules.image_names)
        new_series = _series_of(new, key, rules.image_names)
        row = EntryComparison(
            *key,
            "compared",
            failed_before=int(base_entry["failed"]),
            failed_now=int(new_entry["failed"]),
            lost=len(np.setdiff1d(base_series["index"], new_series["index"])),
            new_entry=new_entry,
            max_broken=rules.max_broken,
        )
        for metric in rules.image_names:
            before, after = paired_values(base_series, new_series, metric)
            if len(before):
                family.append((row, metric, after - before, before.mean(), after.mean()))
            else:  # nothing paired: fail closed when the baseline had images
                unmeasurable = len(base_series["index"]) > 0
                row.metrics[metric] = MetricDelta(None, None, None, regression=unmeasurable)
        for metric in rules.set_names:  # on the baseline's images: see set_gate
            pair = set_pair(base, new, key, metric, resamples)
            if pair is not None and pair.new is not None:
                family.append((row, metric, pair, pair.base.value, pair.new.value))
            else:  # no image, or NEW lost some of the baseline's: fail closed when it had any
                row.metrics[metric] = MetricDelta(None, None, None, regression=pair is not None)
        results.append(row)
    signs = [1.0 if rules.metric(metric).higher_is_better else -1.0 for _, metric, *_ in family]
    decisions = decide_family(  # on the improvement: NEW − BASELINE, or its opposite
        [
            change.difference(sign) if isinstance(change, SetPair) else change * sign
            for (_, _, change, _, _), sign in zip(family, signs)
        ],
        tolerance=[rules.tolerance(metric) for _, metric, *_ in family],
        broken_at=[rules.broken_at(metric) for _, metric, *_ in family],
        alpha=rules.alpha,
        counts=ResampleCounts(),
    )
    for (row, metric, _, before, after), decision, sign in zip(family, decisions, signs):
        drop = decision.significant and decision.difference < -rules.tolerance(metric)
        row.metrics[metric] = MetricDelta(
            _float(before), _float(after), _as_change(decision, sign), drop
        )
    for key, new_entry in new_entries.items():
        if key not in base_entries:
            results.append(EntryComparison(*key, "new", new_entry=new_entry))
    return results


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _as_change(decision: Decision, sign: float) -> Decision:
    """A decision taken on the improvement, as the change NEW − BASELINE (``sign`` -1: a
    lower-is-better metric, whose change and interval are mirrored; the verdict, p-value and
    broken count stay). No ``-0``: an unchanged metric prints ``+0``."""
    if sign > 0:
        return decision
    return replace(
        decision,
        difference=0.0 - decision.difference,
        ci_low=0.0 - decision.ci_high,
        ci_high=0.0 - decision.ci_low,
    )


def _series_of(side: Side, key: tuple[str, str], metrics: Sequence[str]) -> Series:
    """Per-image values of an entry; an entry without any measured image has empty arrays."""
    series = (side.series or {}).get(key)
    if series is not None:
        return series
    empty = np.array([], dtype=float)
    return {"index": np.array([], dtype=np.int64)} | {m: empty for m in metrics}


# -- command ----------------------------------------------------------------------------------
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
    parser.add_argument(
        "--metrics",
        default="",
        metavar="NAMES",
        help="comma-separated metrics to decide on besides PSNR and SSIM (pixel, plug-in or "
        "perceptual per-image metrics, and fid, fid-clean, kid; python -m benchmark list "
        "metrics); with --update, also the metrics whose per-image values (or, for a set "
        "metric, bootstrap replicates) the baseline embeds",
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
    metrics: Sequence[str] = (),
    tolerances: dict[str, float] | None = None,
) -> int:
    """Compare (print the tables) and return the exit status; or rewrite the baseline.

    Whatever is not a regression never returns 1: problems with the inputs raise a
    :class:`UsageError` (exit 2), see the module docstring. ``metrics`` are decided on
    besides PSNR and SSIM (:func:`benchmark.commands.gate_rules.gated_metrics`),
    ``tolerances`` (``--tolerance METRIC=VALUE``) override their default tolerances.
    """
    rules = Rules(tolerance_db, tolerance_ssim, broken_db, broken_ssim, max_broken,
                  fail_inconclusive, metrics=gated_metrics(metrics),
                  tolerances=dict(tolerances or {}))  # fmt: skip
    rules.check()
    new_side = load_for_gate(new, "new", rules.names)
    if update:
        command = update_command or shlex.join(
            ["python", "-m", "benchmark", "compare", str(baseline), str(new), "--update"]
        )
        written = write_baseline(baseline, new_side, command, rules.names)
        print(
            f"baseline {baseline} rewritten from {new} "
            f"(inpaint-bench {written['baseline']['version']}; {written['baseline']['command']})"
        )
        return 0
    base_side = load_baseline(baseline, allow_missing, rules.names)
    check_complete_run(new_side)
    notes = rename_methods(new_side, parse_pairs(pairs))
    notes += check_same_data(base_side, new_side, allow_data_change)
    results = compare_sides(base_side, new_side, rules)
    lines, status = summary_lines(results, rules, allow_missing)
    print(render_comparison(results, rules))
    print("\n".join(notes + lines))
    return status


def load_baseline(
    path: str | Path, allow_missing: bool = False, metrics: Sequence[str] = ("psnr", "ssim")
) -> Side:
    """The baseline side with per-image ``metrics``, refused (exit 2) when unusable, or empty
    or partial without ``allow_missing``; an empty baseline (no entry at all) is refused even
    with it."""
    side = load_for_gate(path, "baseline", metrics)
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
    metrics = [name for name in args.metrics.split(",") if name.strip()]
    return fail_closed(
        gate, args.baseline, args.new, update=args.update, pairs=args.pair, metrics=metrics,
        **rule_options(args),
    )  # fmt: skip


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

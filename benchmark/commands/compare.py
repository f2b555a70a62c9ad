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
import json
import math
import reprlib
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

import benchmark
from benchmark.errors import BenchmarkError, DataError, UsageError
from benchmark.leaderboard import LEADERBOARD_FORMAT
from benchmark.records import STATUS_OK, RecordStore, finite, read_json, write_atomic
from benchmark.significance import SIGNIFICANCE_LEVEL, Series, common_values, compare_series

DEFAULT_TOLERANCE_DB = 0.05
DEFAULT_TOLERANCE_SSIM = 0.001
#: Leaderboard ``config`` keys that may differ between comparable sides; every other key must
#: be equal (data set, split, size, seed, ``images`` = the number of images evaluated, ...).
#: ``limit`` is represented by ``images``; ``data_dir`` is where the same files lie.
IGNORED_CONFIG_KEYS = ("version", "limit", "data_dir")
#: Metrics the gate compares, with their labels and display decimals (higher is better).
GATED_METRICS = {"psnr": ("PSNR", 2), "ssim": ("SSIM", 4)}
#: Oldest leaderboard format the gate reads (2 has every field it compares: n, failed,
#: per-image values).
MIN_READABLE_FORMAT = 2
#: Decimals of the per-image values embedded in a baseline.
PER_IMAGE_DECIMALS = 4

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


# -- loading ----------------------------------------------------------------------------------
@dataclass
class Side:
    """One input of the comparison: its leaderboard and, when known, per-image values."""

    path: Path
    what: str
    leaderboard: dict[str, Any]
    series: dict[tuple[str, str], Series] | None = None  # (mask, method) -> per-image values
    run: dict[str, Any] | None = None  # run.json (or the run information of a baseline)

    @property
    def config(self) -> dict[str, Any]:
        return self.leaderboard.get("config") or {}

    def entries(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {
            (table["mask"], entry["method"]): entry
            for table in self.leaderboard["tables"]
            for entry in table["entries"]
        }


def load_side(path: str | Path, what: str) -> Side:
    """Load a baseline file or a run directory with its per-image values (fail closed).

    Any problem (missing or corrupt file, no per-image values, NaN values, counts that do
    not match the leaderboard) is a :class:`DataError` naming the file.
    """
    path = Path(path)
    if path.is_dir():
        board_path = path / "leaderboard.json"
        if not board_path.exists():
            raise DataError(f"{what} {str(path)!r} is a folder without a leaderboard.json")
    elif path.exists():
        board_path = path
    else:
        raise DataError(f"{what} {str(path)!r} does not exist")
    leaderboard = _check_leaderboard(_read_json(board_path, what), board_path, what)
    side = Side(path, what, leaderboard)
    run_dir = board_path.parent
    if "per_image" in leaderboard:
        side.series = _decode_per_image(leaderboard, board_path, what)
        run = (leaderboard.get("baseline") or {}).get("run")
        side.run = run if isinstance(run, dict) else None
        return side
    if board_path.name != "leaderboard.json":
        fix = (
            "regenerate it with `python -m benchmark gate --update`"
            if what == "baseline"
            else "it must be a run directory with records.jsonl and run.json"
        )
        raise DataError(
            f"{what} {str(path)!r} has no per-image values (no 'per_image' section) and the "
            f"gate compares image by image: {fix}"
        )
    for name in ("run.json", "records.jsonl"):
        if not (run_dir / name).exists():
            raise DataError(
                f"{what} run folder {str(run_dir)!r} has no {name}: the gate needs the run's "
                "per-image records and configuration"
            )
    side.run = _read_json(run_dir / "run.json", f"{what} run file")
    if not isinstance(side.run, dict):
        raise DataError(f"{what} run file {str(run_dir / 'run.json')!r} is not an object")
    side.series = series_from_records(run_dir / "records.jsonl", leaderboard, strict=True)
    return side


def _read_json(path: Path, what: str) -> Any:
    """``read_json``, with JSON nested too deeply for Python's parser as a DataError too."""
    try:
        return read_json(path, what)
    except RecursionError:
        raise DataError(f"{what} {str(path)!r} is not usable JSON: nested too deeply") from None


#: How deep the values of a leaderboard's ``config`` may nest (lists of names are depth 2).
MAX_CONFIG_DEPTH = 4


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a JSON value, counting no further than ``limit + 1``."""
    if limit < 0 or not isinstance(value, (dict, list)):
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(v, limit - 1) for v in children), default=0)


def _check_leaderboard(data: Any, path: Path, what: str) -> dict[str, Any]:
    def bad(reason: str) -> DataError:
        return DataError(f"{what} {str(path)!r} is not a usable leaderboard: {reason}")

    if not isinstance(data, dict) or not isinstance(data.get("tables"), list):
        raise bad("expected an object with a 'tables' list")
    version = data.get("format")
    if not isinstance(version, int) or isinstance(version, bool) or version > LEADERBOARD_FORMAT:
        raise bad(f"unknown format {version!r} (this version reads up to {LEADERBOARD_FORMAT})")
    if version < MIN_READABLE_FORMAT:
        raise bad(
            f"format {version} is too old; regenerate it with `python -m benchmark gate --update`"
        )
    config = data.get("config", {})
    if not isinstance(config, dict):
        raise bad(f"'config' must be an object, got {type(config).__name__}")
    if _depth(config, MAX_CONFIG_DEPTH) > MAX_CONFIG_DEPTH:
        raise bad(f"'config' is nested deeper than {MAX_CONFIG_DEPTH} levels")
    for table in data["tables"]:
        if not isinstance(table, dict) or not isinstance(table.get("entries"), list):
            raise bad("a table without an 'entries' list")
        if not isinstance(table.get("mask"), str):
            raise bad("a table without a 'mask' name")
        for entry in table["entries"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("method"), str):
                raise bad(f"an entry of mask {table['mask']!r} without a 'method' name")
            where = f"entry {entry['method']!r} of mask {table['mask']!r}"
            if not isinstance(entry.get("metrics"), dict):
                raise bad(f"{where} has no metrics")
            for key in ("n", "failed"):
                value = entry.get(key)
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise bad(f"{where}: {key!r} must be an integer >= 0, got {value!r}")
            for name, summary in entry["metrics"].items():
                fields = ("mean", "ci_low", "ci_high")
                if not isinstance(summary, dict) or not all(
                    isinstance(summary.get(f), (int, float, type(None))) for f in fields
                ):
                    raise bad(f"{where}: metric {name!r} is malformed")
    return data


def _decode_per_image(
    leaderboard: dict[str, Any], path: Path, what: str
) -> dict[tuple[str, str], Series]:
    """``per_image`` of a baseline -> {(mask, method): {"index", "psnr", "ssim"}}, strictly:
    every entry has both lists, one value per image, each a finite number or null (not
    measured) at the same positions, and as many measured values as the entry's ``n``."""

    def bad(reason: str) -> DataError:
        return DataError(f"{what} {str(path)!r} has unusable per-image values: {reason}")

    data = leaderboard["per_image"]
    if not isinstance(data, dict):
        raise bad("'per_image' must be an object")
    images = (leaderboard.get("config") or {}).get("images")
    series: dict[tuple[str, str], Series] = {}
    for table in leaderboard["tables"]:
        for entry in table["entries"]:
            mask, method = table["mask"], entry["method"]
            where = f"{method}/{mask}"
            values = (
                (data.get(mask) or {}).get(method) if isinstance(data.get(mask), dict) else None
            )
            if not isinstance(values, dict):
                raise bad(f"none for {where}")
            arrays = {}
            for metric in GATED_METRICS:
                column = values.get(metric)
                if not isinstance(column, list):
                    raise bad(f"no {metric!r} list for {where}")
                if isinstance(images, int) and len(column) != images:
                    raise bad(f"{where} {metric}: {len(column)} values for {images} images")
                if not all(v is None or _is_number(v) for v in column):
                    raise bad(f"{where} {metric}: values must be numbers or null")
                array = np.array([np.nan if v is None else v for v in column], dtype=float)
                nulls = np.array([v is None for v in column], dtype=bool)
                if not np.all(np.isfinite(array) | nulls):
                    raise bad(f"{where} {metric}: NaN or infinite values (null = not measured)")
                arrays[metric] = array
            measured = [np.isfinite(a) for a in arrays.values()]
            if any(not np.array_equal(measured[0], m) for m in measured[1:]):
                raise bad(f"{where}: the metrics were measured on different images")
            index = np.flatnonzero(measured[0])
            if len(index) != entry["n"]:
                raise bad(
                    f"{where}: {len(index)} measured values but the entry says n = {entry['n']}"
                )
            series[(mask, method)] = {"index": index} | {m: a[index] for m, a in arrays.items()}
    return series


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _load_for_gate(path: str | Path, what: str) -> Side:
    """``load_side`` whose file problems exit 2: distinct from a regression's exit 1."""
    try:
        return load_side(path, what)
    except DataError as exc:
        raise UsageError(str(exc)) from None


def series_from_records(
    path: Path,
    leaderboard: dict[str, Any],
    metrics: Sequence[str] = tuple(GATED_METRICS),
    strict: bool = False,
) -> dict[tuple[str, str], Series]:
    """Per-image ``metrics`` of the leaderboard's entries, from a run's ``records.jsonl``.

    Only successful records of the method version (fingerprint) the leaderboard reports, and
    of its first ``images`` indices, are used. ``strict`` (the gate): a successful record
    without a finite value of every metric, or an entry whose measured images do not number
    its ``n``, is a :class:`DataError`; otherwise such images are left out.
    """
    entries = {
        (table["mask"], entry["method"]): entry
        for table in leaderboard["tables"]
        for entry in table["entries"]
    }
    images = (leaderboard.get("config") or {}).get("images")
    rows: dict[tuple[str, str], dict[str, dict[int, dict[str, Any]]]] = {}
    try:
        store = RecordStore(path, truncate=False)  # read-only: a run may still be writing
        for record in store:
            key = (record["mask"], record["method"])
            index = int(record["index"])
            if key not in entries or record["status"] != STATUS_OK:
                continue
            if images is not None and index >= images:
                continue
            fingerprint = str(record.get("fingerprint", ""))
            rows.setdefault(key, {}).setdefault(fingerprint, {})[index] = record
    except RecursionError:
        raise DataError(f"records file {str(path)!r} is not usable: nested too deeply") from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"records file {str(path)!r} is not usable: {exc}") from None
    series: dict[tuple[str, str], Series] = {}
    for key, entry in entries.items():
        by_fingerprint = rows.get(key, {})
        wanted = entry.get("fingerprint")
        if wanted is not None:
            chosen = by_fingerprint.get(str(wanted), {})
        else:  # mixed versions: usable only when there is no doubt which records it used
            chosen = next(iter(by_fingerprint.values())) if len(by_fingerprint) == 1 else {}
        order = sorted(chosen)
        arrays = {
            m: np.array([_float(chosen[i].get(m)) for i in order], dtype=float) for m in metrics
        }
        keep = (
            np.all([np.isfinite(a) for a in arrays.values()], axis=0)
            if order
            else np.array([], bool)
        )
        if strict:
            where = f"{key[1]}/{key[0]}"
            if not np.all(keep):
                raise DataError(
                    f"records file {str(path)!r}: {where} has a successful record without a "
                    f"finite {' and '.join(metrics)} (image {order[int(np.argmin(keep))]})"
                )
            if len(order) != entry.get("n"):
                raise DataError(
                    f"records file {str(path)!r} holds {len(order)} measured images of {where} "
                    f"but its leaderboard says n = {entry.get('n')}"
                )
        if not order:
            continue
        series[key] = {"index": np.array(order, dtype=np.int64)[keep]} | {
            m: a[keep] for m, a in arrays.items()
        }
    return series


def _float(value: Any) -> float:
    return float(value) if _is_number(value) else float("nan")


# -- configuration check ----------------------------------------------------------------------
def configuration_differences(base: Side, new: Side) -> list[str]:
    """What differs between the two sides' configurations (empty: comparable)."""
    diffs = []
    keys = dict.fromkeys([*base.config, *new.config])
    for key in (k for k in keys if k not in IGNORED_CONFIG_KEYS):
        if base.config.get(key) != new.config.get(key):
            before, after = reprlib.repr(base.config.get(key)), reprlib.repr(new.config.get(key))
            diffs.append(f"{key} {before} -> {after}")
    base_masks, new_masks = _run_masks(base), _run_masks(new)
    for mask in sorted(set(base_masks) & set(new_masks)):
        before = base_masks[mask].get("parameters")
        after = new_masks[mask].get("parameters")
        if before != after:
            diffs.append(
                f"mask {mask!r} parameters {reprlib.repr(before)} -> {reprlib.repr(after)}"
            )
    return diffs


def _run_masks(side: Side) -> dict[str, dict[str, Any]]:
    masks = (side.run or {}).get("masks")
    if not isinstance(masks, dict):
        return {}
    return {k: v for k, v in masks.items() if isinstance(v, dict)}


def check_comparable(base: Side, new: Side) -> None:
    """Raise a one-line :class:`UsageError` when the configurations differ."""
    diffs = configuration_differences(base, new)
    if diffs:
        raise UsageError(
            f"cannot compare {base.path} with {new.path}: different configuration "
            f"({'; '.join(diffs)}); rerun with the baseline's configuration or use --update"
        )


def baseline_gaps(side: Side) -> list[str]:
    """Why a baseline is empty or partial (empty list: every entry covers every image)."""
    tables = side.leaderboard["tables"]
    if not tables:
        return ["it has no tables"]
    images = side.config.get("images")
    gaps = []
    for table in tables:
        if not table["entries"]:
            gaps.append(f"mask {table['mask']!r} has no entries")
        for entry in table["entries"]:
            covered = entry["n"] + entry["failed"]
            if not isinstance(images, int) or covered != images:
                gaps.append(
                    f"{entry['method']}/{table['mask']} covers {covered} of {images} images"
                )
    return gaps


def check_complete_run(side: Side) -> None:
    """A NEW run directory must have finished: an unfinished run is no evidence either way."""
    if "per_image" in side.leaderboard:
        return  # a baseline file: checked by baseline_gaps
    status = (side.run or {}).get("status")
    if status != "complete":
        raise UsageError(
            f"new run {str(side.path)!r} is not complete (status {status!r}); rerun its command "
            "to finish it"
        )


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


# -- baseline ---------------------------------------------------------------------------------
def run_command(run: dict[str, Any]) -> str:
    """The ``python -m benchmark run`` command that reproduces a run (from its run.json)."""
    config = run.get("config") or {}
    words = [
        "python", "-m", "benchmark", "run",
        "--methods", ",".join(config.get("methods") or []),
        "--masks", ",".join(config.get("masks") or []),
        "--dataset", str(config.get("dataset")),
        "--split", str(config.get("split")),
        "--seed", str(config.get("seed")),
    ]  # fmt: skip
    for option in ("limit", "size", "data_dir"):
        if config.get(option) is not None:
            words += [f"--{option.replace('_', '-')}", str(config[option])]
    if config.get("device"):
        words += ["--device", str(config["device"])]
    return shlex.join(words)


def baseline_from(side: Side, update_command: str) -> dict[str, Any]:
    """A baseline: NEW's leaderboard, its per-image values and where it came from."""
    if side.series is None or side.run is None:
        raise UsageError(
            f"--update needs a run directory with run.json and records.jsonl as NEW, "
            f"got {str(side.path)!r}"
        )
    if side.run.get("status") != "complete":
        raise UsageError(
            f"--update needs a complete run; {str(side.path)!r} is {side.run.get('status')!r} "
            "(rerun its command to finish it)"
        )
    images = side.config.get("images")
    if images is None:
        images = 1 + max(
            (int(s["index"].max()) for s in side.series.values() if len(s["index"])), default=-1
        )
    per_image: dict[str, Any] = {
        "_about": (
            f"per-image values of every entry, rounded to {PER_IMAGE_DECIMALS} decimals; "
            "position = image index; null = not measured"
        )
    }
    for table in side.leaderboard["tables"]:
        for entry in table["entries"]:
            s = side.series.get((table["mask"], entry["method"]))
            if s is None:
                continue
            arrays = {}
            for metric in GATED_METRICS:
                values: list[float | None] = [None] * images
                for i, v in zip(s["index"].tolist(), s[metric].tolist()):
                    if math.isfinite(v):
                        values[i] = round(v, PER_IMAGE_DECIMALS)
                arrays[metric] = values
            per_image.setdefault(table["mask"], {})[entry["method"]] = arrays
    run = side.run
    return {
        **side.leaderboard,
        "baseline": {
            "version": benchmark.__version__,
            "command": run_command(run),
            "updated_by": update_command,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "git_revision": run.get("git_revision"),
            "run": {
                k: run.get(k)
                for k in ("masks", "methods", "image_size", "device", "versions", "plugins")
                if k in run or k != "plugins"
            },
        },
        "per_image": per_image,
    }


def baseline_text(baseline: dict[str, Any]) -> str:
    """Indented JSON with every per-image list on one line (the file stays diff-friendly)."""
    arrays: dict[str, str] = {}

    def compact(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: compact(v) for k, v in node.items()}
        if (
            isinstance(node, list)
            and len(node) > 16
            and all(v is None or isinstance(v, (int, float)) for v in node)
        ):
            token = f"@@{len(arrays)}@@"
            arrays[token] = json.dumps(node, separators=(",", ":"))
            return token
        return node

    body = {k: (compact(v) if k == "per_image" else v) for k, v in baseline.items()}
    text = json.dumps(finite(body), indent=2, ensure_ascii=False)
    for token, array in arrays.items():
        text = text.replace(f'"{token}"', array, 1)
    return text + "\n"


def write_baseline(path: str | Path, new: Side, update_command: str) -> dict[str, Any]:
    """Atomically (re)write the baseline file ``path`` from ``new``; returns what was written."""
    baseline = baseline_from(new, update_command)
    write_atomic(path, baseline_text(baseline))
    return baseline


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
    new_side = _load_for_gate(new, "new")
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
    side = _load_for_gate(path, "baseline")
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

"""``python -m benchmark compare BASELINE NEW``: the regression gate between two leaderboards.

BASELINE and NEW are ``leaderboard.json`` files or run directories. For every mask and method
the gate shows the baseline and new mean PSNR and SSIM, their difference and a marker, and
exits 1 when any method/mask pair got worse by more than the tolerance (``--tolerance-db``,
``--tolerance-ssim``) **and** the drop is significant (``p < 0.05``); 0 otherwise. A pair that
fails more images than before also fails the gate. Entries only in NEW are reported as new;
entries missing from NEW fail the gate unless ``--allow-missing``. Leaderboards of different
configurations (data set, split, size, seed, number of images, mask parameters) are refused
with exit code 2, and so is a missing or corrupt input file (exit 1 always means a regression);
the package version may differ (that is what the gate compares).

**The paired test.** Both sides were measured on the same images with the same holes, so the
drop is tested image by image: the Wilcoxon signed-rank test on the per-image differences
NEW − BASELINE, with a bootstrap 95 % CI of their mean (:mod:`benchmark.significance`). A run
directory supplies its per-image values from ``records.jsonl`` (the records of the exact
method version its leaderboard reports). A committed baseline has no records, so
``--update`` embeds them: ``per_image[mask][method] = {"psnr": [...], "ssim": [...]}``,
one value per image index (``null`` = not measured), rounded to 4 decimals (1e-4 dB,
1e-4 SSIM: far below both tolerances, and about 100 kB per method and mask for 3,576 images).
Both sides are compared at that precision, so an unchanged method differs by exactly 0.
When either side lacks per-image values (a plain leaderboard file), the gate falls back to an
unpaired test of the two means from their bootstrap CIs (normal approximation) and says so.

``--update`` deliberately rewrites BASELINE from NEW (a run directory), atomically, with the
package version, the run command that reproduces it and the command that wrote it.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

import benchmark
from benchmark.errors import DataError, UsageError
from benchmark.leaderboard import LEADERBOARD_FORMAT
from benchmark.records import STATUS_OK, RecordStore, finite, read_json, write_atomic
from benchmark.significance import SIGNIFICANCE_LEVEL, Series, compare_series

DEFAULT_TOLERANCE_DB = 0.05
DEFAULT_TOLERANCE_SSIM = 0.001
#: Leaderboard ``config`` keys that may differ between comparable sides; every other key must
#: be equal (data set, split, size, seed, ``images`` = the number of images evaluated, ...).
#: ``limit`` is represented by ``images``; ``data_dir`` is where the same files lie.
IGNORED_CONFIG_KEYS = ("version", "limit", "data_dir")
#: Metrics the gate compares, with their labels and display decimals (higher is better).
GATED_METRICS = {"psnr": ("PSNR", 2), "ssim": ("SSIM", 4)}
#: Decimals of the per-image values embedded in a baseline.
PER_IMAGE_DECIMALS = 4

EXAMPLES = """\
examples:
  python -m benchmark compare results/baseline.json results/runs/ci
  python -m benchmark compare old-run/ new-run/ --tolerance-db 0.1
  python -m benchmark compare results/baseline.json results/runs/ci --allow-missing
  python -m benchmark compare results/baseline.json results/runs/ci --update   # new baseline

Exit status: 0 no regression, 1 a regression (or a missing entry), 2 incomparable inputs.
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
    """Load a leaderboard file or a run directory; problems are a :class:`DataError`."""
    path = Path(path)
    if path.is_dir():
        board_path = path / "leaderboard.json"
        if not board_path.exists():
            raise DataError(f"{what} {str(path)!r} is a folder without a leaderboard.json")
    elif path.exists():
        board_path = path
    else:
        raise DataError(f"{what} {str(path)!r} does not exist")
    leaderboard = _check_leaderboard(read_json(board_path, what), board_path, what)
    side = Side(path, what, leaderboard)
    run_dir = board_path.parent
    if "per_image" in leaderboard:
        side.series = _decode_per_image(leaderboard["per_image"], board_path, what)
        side.run = (leaderboard.get("baseline") or {}).get("run")
    elif board_path.name == "leaderboard.json" and (run_dir / "run.json").exists():
        side.run = read_json(run_dir / "run.json", f"{what} run file")
        if (run_dir / "records.jsonl").exists():
            side.series = series_from_records(run_dir / "records.jsonl", leaderboard)
    return side


def _check_leaderboard(data: Any, path: Path, what: str) -> dict[str, Any]:
    def bad(reason: str) -> DataError:
        return DataError(f"{what} {str(path)!r} is not a leaderboard: {reason}")

    if not isinstance(data, dict) or not isinstance(data.get("tables"), list):
        raise bad("expected an object with a 'tables' list")
    version = data.get("format")
    if not isinstance(version, int) or version > LEADERBOARD_FORMAT:
        raise bad(f"unknown format {version!r} (this version reads up to {LEADERBOARD_FORMAT})")
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
                if not isinstance(entry.get(key, 0), int):
                    raise bad(f"{where}: {key!r} must be an integer")
            for name, summary in entry["metrics"].items():
                fields = ("mean", "ci_low", "ci_high")
                if not isinstance(summary, dict) or not all(
                    isinstance(summary.get(f), (int, float, type(None))) for f in fields
                ):
                    raise bad(f"{where}: metric {name!r} is malformed")
    return data


def _decode_per_image(data: Any, path: Path, what: str) -> dict[tuple[str, str], Series]:
    """``per_image`` of a baseline -> {(mask, method): {"index", "psnr", "ssim"}}."""
    series: dict[tuple[str, str], Series] = {}
    try:
        for mask, methods in data.items():
            if mask.startswith("_"):  # "_about": a description for readers of the file
                continue
            for method, values in methods.items():
                arrays = {m: np.array(values[m], dtype=float) for m in GATED_METRICS}
                measured = np.flatnonzero(np.all([np.isfinite(a) for a in arrays.values()], 0))
                series[(mask, method)] = {"index": measured} | {
                    m: a[measured] for m, a in arrays.items()
                }
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"{what} {str(path)!r} has a malformed 'per_image' section: {exc!r}"
        ) from None
    return series


def _load_for_gate(path: str | Path, what: str) -> Side:
    """``load_side`` whose file problems exit 2: distinct from a regression's exit 1."""
    try:
        return load_side(path, what)
    except DataError as exc:
        raise UsageError(str(exc)) from None


def series_from_records(
    path: Path, leaderboard: dict[str, Any], metrics: Sequence[str] = tuple(GATED_METRICS)
) -> dict[tuple[str, str], Series]:
    """Per-image ``metrics`` of the leaderboard's entries, from a run's ``records.jsonl``.

    Only successful records of the method version (fingerprint) the leaderboard reports, and
    of its first ``images`` indices, are used.
    """
    entries = {
        (table["mask"], entry["method"]): entry
        for table in leaderboard["tables"]
        for entry in table["entries"]
    }
    images = (leaderboard.get("config") or {}).get("images")
    rows: dict[tuple[str, str], dict[str, dict[int, dict[str, Any]]]] = {}
    for record in RecordStore(path, truncate=False):  # read-only: a run may still be writing
        key = (record["mask"], record["method"])
        index = int(record["index"])
        if key not in entries or record["status"] != STATUS_OK:
            continue
        if images is not None and index >= images:
            continue
        by_fingerprint = rows.setdefault(key, {}).setdefault(str(record.get("fingerprint", "")), {})
        by_fingerprint[index] = record
    series: dict[tuple[str, str], Series] = {}
    for key, by_fingerprint in rows.items():
        wanted = entries[key].get("fingerprint")
        if wanted is not None:
            chosen = by_fingerprint.get(str(wanted))
        else:  # format-1 leaderboard: usable only when there is no doubt which records it used
            chosen = next(iter(by_fingerprint.values())) if len(by_fingerprint) == 1 else None
        if not chosen:
            continue
        order = sorted(chosen)
        arrays = {m: np.array([chosen[i].get(m) for i in order], dtype=float) for m in metrics}
        keep = np.all([np.isfinite(a) for a in arrays.values()], axis=0)  # as _decode_per_image
        series[key] = {"index": np.array(order, dtype=np.int64)[keep]} | {
            m: a[keep] for m, a in arrays.items()
        }
    return series


# -- configuration check ----------------------------------------------------------------------
def configuration_differences(base: Side, new: Side) -> list[str]:
    """What differs between the two sides' configurations (empty: comparable)."""
    diffs = []
    keys = dict.fromkeys([*base.config, *new.config])
    for key in (k for k in keys if k not in IGNORED_CONFIG_KEYS):
        if base.config.get(key) != new.config.get(key):
            diffs.append(f"{key} {base.config.get(key)!r} -> {new.config.get(key)!r}")
    base_masks = (base.run or {}).get("masks") or {}
    new_masks = (new.run or {}).get("masks") or {}
    for mask in sorted(set(base_masks) & set(new_masks)):
        before = (base_masks[mask] or {}).get("parameters")
        after = (new_masks[mask] or {}).get("parameters")
        if before != after:
            diffs.append(f"mask {mask!r} parameters {before} -> {after}")
    return diffs


def check_comparable(base: Side, new: Side) -> None:
    """Raise a one-line :class:`UsageError` when the configurations differ."""
    diffs = configuration_differences(base, new)
    if diffs:
        raise UsageError(
            f"cannot compare {base.path} with {new.path}: different configuration "
            f"({'; '.join(diffs)}); rerun with the baseline's configuration or use --update"
        )


# -- comparison -------------------------------------------------------------------------------
@dataclass
class MetricDelta:
    """One metric of one entry: baseline and new means, the change and its test."""

    base: float | None
    new: float | None
    delta: float  # NEW - BASELINE (paired: mean over the images both measured)
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    paired: bool
    verdict: str  # "worse", "worse (n.s.)", "better", "same"


@dataclass
class EntryComparison:
    mask: str
    method: str
    status: str  # "compared", "new", "missing"
    metrics: dict[str, MetricDelta] = field(default_factory=dict)
    failed_before: int = 0
    failed_now: int = 0
    images_before: int = 0  # images evaluated (measured + failed)
    images_now: int = 0
    new_entry: dict[str, Any] | None = None

    @property
    def regression(self) -> bool:
        """Worse beyond tolerance and significant, more failures, or fewer images evaluated."""
        worse = any(d.verdict == "worse" for d in self.metrics.values())
        fewer = self.images_now < self.images_before
        return self.status == "compared" and (
            worse or self.failed_now > self.failed_before or fewer
        )

    @property
    def marker(self) -> str:
        if self.status == "new":
            return "new"
        if self.status == "missing":
            return "MISSING"
        if self.regression:
            extra = self.failed_now - self.failed_before
            lost = self.images_before - self.images_now
            notes = [f"+{extra} failed"] if extra > 0 else []
            notes += [f"{lost} images not evaluated"] if lost > 0 else []
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


def _half_width(entry: dict[str, Any], metric: str) -> float:
    summary = entry.get("metrics", {}).get(metric) or {}
    low, high = summary.get("ci_low"), summary.get("ci_high")
    return (high - low) / 2 if low is not None and high is not None else float("nan")


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


def compare_metric(
    base_entry: dict[str, Any],
    new_entry: dict[str, Any],
    metric: str,
    tolerance: float,
    base_series: Series | None,
    new_series: Series | None,
) -> MetricDelta:
    """Compare one metric of an entry: paired when both sides have per-image values."""
    base, new = _mean(base_entry, metric), _mean(new_entry, metric)
    if base_series is not None and new_series is not None:
        # both sides at the baseline's precision: an unchanged method differs by exactly 0
        d = compare_series(_rounded(new_series, metric), _rounded(base_series, metric), metric)
        if d.n:
            verdict = _verdict(d.mean, d.p_value, tolerance)
            return MetricDelta(
                base, new, d.mean, d.ci_low, d.ci_high, d.p_value, d.n, True, verdict
            )
    if base is None or new is None:
        nan = float("nan")
        return MetricDelta(base, new, nan, nan, nan, nan, 0, False, "same")
    # unpaired: normal approximation from the two bootstrap CIs
    delta = new - base
    se = math.hypot(_half_width(base_entry, metric), _half_width(new_entry, metric)) / 1.96
    if not math.isfinite(se):
        p_value = float("nan")
    elif se > 0:
        p_value = math.erfc(abs(delta) / se / math.sqrt(2))
    else:
        p_value = 0.0 if delta else 1.0
    n = min(int(base_entry.get("n") or 0), int(new_entry.get("n") or 0))
    low, high = delta - 1.96 * se, delta + 1.96 * se
    return MetricDelta(
        base, new, delta, low, high, p_value, n, False, _verdict(delta, p_value, tolerance)
    )


def compare_sides(
    base: Side,
    new: Side,
    tolerance_db: float = DEFAULT_TOLERANCE_DB,
    tolerance_ssim: float = DEFAULT_TOLERANCE_SSIM,
) -> list[EntryComparison]:
    """Every (mask, method) of either side, in the baseline's order, new entries last."""
    tolerances = {"psnr": tolerance_db, "ssim": tolerance_ssim}
    base_entries, new_entries = base.entries(), new.entries()
    results = []
    for key, base_entry in base_entries.items():
        mask, method = key
        new_entry = new_entries.get(key)
        if new_entry is None:
            results.append(EntryComparison(mask, method, "missing"))
            continue
        row = EntryComparison(
            mask,
            method,
            "compared",
            failed_before=int(base_entry.get("failed") or 0),
            failed_now=int(new_entry.get("failed") or 0),
            images_before=int(base_entry.get("n") or 0) + int(base_entry.get("failed") or 0),
            images_now=int(new_entry.get("n") or 0) + int(new_entry.get("failed") or 0),
            new_entry=new_entry,
        )
        for metric in GATED_METRICS:
            row.metrics[metric] = compare_metric(
                base_entry,
                new_entry,
                metric,
                tolerances[metric],
                (base.series or {}).get(key),
                (new.series or {}).get(key),
            )
        results.append(row)
    for key, new_entry in new_entries.items():
        if key not in base_entries:
            results.append(EntryComparison(*key, "new", new_entry=new_entry))
    return results


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
) -> tuple[list[str], bool]:
    """Explanation and verdict lines under the tables, and whether the gate passes."""
    regressions = [r for r in results if r.regression]
    missing = [r for r in results if r.status == "missing"]
    new = [r for r in results if r.status == "new"]
    compared = [r for r in results if r.status == "compared"]
    unpaired = [r for r in compared if not all(d.paired for d in r.metrics.values())]
    lines = [
        "Δ = NEW − BASELINE; p = Wilcoxon signed-rank test on per-image differences (paired); "
        f"REGRESSION = drop > {tolerance_db:g} dB PSNR or > {tolerance_ssim:g} SSIM with "
        f"p < {SIGNIFICANCE_LEVEL:g}, or more failed images."
    ]
    if unpaired:
        names = ", ".join(f"{r.method}/{r.mask}" for r in unpaired)
        lines.append(
            f"note: no per-image values for {names}: compared means with an unpaired "
            "test from their CIs (much less sensitive)"
        )
    if new:
        lines.append("new entries: " + ", ".join(f"{r.method}/{r.mask}" for r in new))
    passed = not regressions and (allow_missing or not missing)
    if missing:
        names = ", ".join(f"{r.method}/{r.mask}" for r in missing)
        fix = (
            "(allowed by --allow-missing)" if allow_missing else "(pass --allow-missing to accept)"
        )
        lines.append(f"missing from NEW: {names} {fix}")
    if regressions:
        names = ", ".join(f"{r.method}/{r.mask}" for r in regressions)
        lines.append(f"gate: FAIL — {len(regressions)} regression(s): {names}")
    elif not passed:
        lines.append(f"gate: FAIL — {len(missing)} baseline entries missing from NEW")
    else:
        lines.append(f"gate: PASS — {len(compared)} entries compared, no regression")
    return lines, passed


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
                k: run.get(k) for k in ("masks", "methods", "image_size", "device", "versions")
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
    """Compare (print the tables) and return the exit status; or rewrite the baseline."""
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
    base_side = _load_for_gate(baseline, "baseline")
    check_comparable(base_side, new_side)
    results = compare_sides(base_side, new_side, tolerance_db, tolerance_ssim)
    lines, passed = summary_lines(results, tolerance_db, tolerance_ssim, allow_missing)
    print(render_comparison(results))
    print("\n".join(lines))
    return 0 if passed else 1


def run(args: argparse.Namespace) -> int:
    """``compare`` subcommand: exit 0 (pass), 1 (regression or missing entry)."""
    return gate(
        args.baseline,
        args.new,
        args.tolerance_db,
        args.tolerance_ssim,
        args.allow_missing,
        args.update,
    )

"""Set metrics in the regression gate (FID, fid-clean, KID): where each side's bootstrap
replicates come from, and what a baseline file keeps of them.

A set metric has no per-image values to pair, so the gate resamples images
(:mod:`benchmark.perceptual.set_bootstrap`): for each (mask, method) entry, the images are
those the **baseline** measured for it; NEW must have measured every one of them (an image it
no longer measures is a regression anyway, and the set comparison is then not made). On those
images each side gives the metric's value and its ``B`` bootstrap replicates, drawn with the
same seeded image draws (seeded by ``n``), so ``new - base`` replicate by replicate is the
paired bootstrap distribution of the difference
(:class:`benchmark.decision_sets.Replicated`).

- A **run folder** computes them from the Inception features its records refer to and the
  real images' features it keeps (``leaderboard.json``'s ``real_features``): a run that was
  not asked for a set metric of that feature mode has none, which is one line, exit 2.
- A **baseline file** keeps them, written by ``--update``:
  ``per_set[mask][method][metric] = {"indices": [...], "value": v, "replicates": [B numbers]}``
  (exact float64 numbers, not the features: a committed baseline stays small, about 20 kB per
  entry and metric at B = 1,000). A baseline without ``per_set`` for a gated metric is one
  line, exit 2. NEW then computes ``B`` replicates over exactly those indices.

``B`` is 1,000, or more in a large gate (:func:`resamples_for`): the smallest p-value of a set
metric is ``2 / (B + 1)``, and Holm tests the smallest p of ``m`` comparisons at ``alpha / m``.

Fewer than 3 images give a value but no replicates (the comparison is inconclusive); an entry
without images has nothing to compare.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.commands.sides import Side, chosen_records
from benchmark.decision import ALPHA
from benchmark.decision_sets import MIN_IMAGES, Replicated
from benchmark.errors import DataError
from benchmark.perceptual.selection import FEATURE_MODES

#: Replicates when the baseline holds none to match (a run folder):
#: :data:`benchmark.perceptual.set_bootstrap.RESAMPLES` (that module imports torch).
RESAMPLES = 1000

#: The sentence kept in a baseline's ``per_set`` section.
ABOUT = (
    "per entry and gated set metric: the image indices it was measured on, its value and its "
    "bootstrap replicates over those images (draws seeded by their number)"
)


def resamples_for(comparisons: int, alpha: float = ALPHA) -> int:
    """Replicates per set metric in a gate of ``comparisons`` (Holm's family): enough that the
    smallest p-value, ``2 / (B + 1)``, is below Holm's first level ``alpha / comparisons``, so
    a clear change can be significant however large the family; at least :data:`RESAMPLES`, in
    steps of 1,000.

    >>> resamples_for(6), resamples_for(24), resamples_for(25), resamples_for(66)
    (1000, 1000, 2000, 3000)
    """
    needed = math.floor(2 * comparisons / alpha) + 1  # B + 1 > 2 m / alpha
    return max(RESAMPLES, 1000 * math.ceil(needed / 1000))


@dataclass(frozen=True)
class SetSample:
    """A set metric of one entry on ``indices``: its value and bootstrap replicates."""

    indices: tuple[int, ...]
    value: float | None  # None: fewer than MIN_IMAGES images
    replicates: np.ndarray  # (B,); empty with fewer than MIN_IMAGES images


@dataclass(frozen=True)
class SetPair:
    """Both sides of one set-metric comparison; ``new`` is None when NEW did not measure
    every image of the baseline's set."""

    base: SetSample
    new: SetSample | None

    def difference(self, sign: float = 1.0) -> Replicated:
        """``sign`` x (NEW - BASELINE): the value's and each paired replicate's."""
        assert self.new is not None
        base, new = self.base, self.new
        value = math.nan if base.value is None or new.value is None else new.value - base.value
        reps = new.replicates - base.replicates if len(base.replicates) else np.zeros(0)
        return Replicated(sign * value, sign * reps, len(base.indices))


def _run_dir(side: Side) -> Path:
    return side.path if side.path.is_dir() else side.path.parent


def attach_sets(side: Side, metrics: Sequence[str]) -> None:
    """Check that ``side`` can supply every set metric of ``metrics`` and attach what it
    needs: a baseline file's ``per_set`` samples, or a run folder's records with their
    feature references. Anything missing is one :class:`DataError` naming the file."""
    from benchmark.perceptual.set_bootstrap import GATEABLE

    refused = [m for m in metrics if m not in GATEABLE]
    if refused:
        raise DataError(
            f"{refused[0]}: the gate decides on {', '.join(GATEABLE)} among set metrics"
        )
    if "per_image" in side.leaderboard:
        side.sets = _decode_per_set(side, metrics)
        return
    run_dir = _run_dir(side)
    real = side.leaderboard.get("real_features") or {}
    side.records = chosen_records(run_dir / "records.jsonl", side.leaderboard)
    for metric in metrics:
        mode = FEATURE_MODES[metric]
        used = [
            side.records[key][i]
            for key, series in (side.series or {}).items()
            for i in series["index"].tolist()
        ]
        if not isinstance(real.get(mode), str) or any(
            not isinstance((r.get("features") or {}).get(mode), str) for r in used
        ):
            raise DataError(
                f"{side.what} run {str(run_dir)!r} stored no {mode!r} Inception features, so it "
                f"cannot give {metric}: rerun it with --metrics {metric}, or gate without it"
            )


def _decode_per_set(side: Side, metrics: Sequence[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """``per_set`` of a baseline -> {(mask, method): {metric: SetSample}}, strictly: every
    entry has every metric, its indices are the images the entry measured, its value a number
    (null below 3 images) and its replicates finite numbers (none below 3 images)."""
    where_file = f"{side.what} {str(side.path)!r}"
    data = side.leaderboard.get("per_set")
    if not isinstance(data, dict):
        raise DataError(
            f"{where_file} has no set-metric replicates (no 'per_set' section) for "
            f"{', '.join(metrics)}: write a baseline that has them with --update --metrics "
            f"{','.join(metrics)}"
        )
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for key, series in (side.series or {}).items():
        mask, method = key
        by_metric = data.get(mask, {}).get(method) if isinstance(data.get(mask), dict) else None
        samples = {}
        for metric in metrics:
            item = by_metric.get(metric) if isinstance(by_metric, dict) else None
            if item is None:
                raise DataError(
                    f"{where_file} has no {metric!r} replicates for {method}/{mask}: write a "
                    f"baseline that has them with --update --metrics {metric}"
                )
            where = f"{where_file} {method}/{mask} {metric}"
            samples[metric] = _sample(item, series["index"], where)
        out[key] = samples
    return out


def _sample(item: Any, measured: np.ndarray, where: str) -> SetSample:
    """One ``per_set`` item, checked against the images the entry measured."""
    if not isinstance(item, dict):
        raise DataError(f"{where}: must be an object with indices, value and replicates")
    indices, value, reps = item.get("indices"), item.get("value"), item.get("replicates")
    if not isinstance(indices, list) or indices != measured.tolist():
        raise DataError(f"{where}: its indices are not the images the entry measured")
    small = len(indices) < MIN_IMAGES
    if not isinstance(reps, list) or not all(_number(v) for v in reps) or (small and reps):
        raise DataError(f"{where}: replicates must be a list of numbers (none below 3 images)")
    if not (value is None if small else _number(value)) or (not small and not reps):
        raise DataError(f"{where}: a value and replicates are required from 3 images on")
    return SetSample(tuple(indices), None if small else float(value), np.array(reps, float))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@lru_cache(maxsize=4)
def _store(run_dir: Path) -> Any:
    """One feature store per run folder, so each features file is read once in a gate (its
    files are named by their content, so a cached one never goes stale)."""
    from benchmark.perceptual.feature_store import FeatureStore

    return FeatureStore(run_dir)


def measure(side: Side, key: tuple[str, str], metric: str, indices: Sequence[int],
            resamples: int = RESAMPLES) -> SetSample:  # fmt: skip
    """``metric`` of a run folder's entry ``key`` on ``indices``, with ``resamples``
    replicates (none below 3 images)."""
    from benchmark.perceptual.set_bootstrap import replicates
    from benchmark.run.set_metrics import entry_features

    indices = [int(i) for i in indices]
    if len(indices) < MIN_IMAGES:
        return SetSample(tuple(indices), None, np.zeros(0))
    real, fake = entry_features(
        _run_dir(side), side.leaderboard, (side.records or {}).get(key, {}), indices,
        FEATURE_MODES[metric], _store(_run_dir(side)),
    )  # fmt: skip
    value, reps = replicates(metric, real, fake, resamples)
    return SetSample(tuple(indices), float(value), np.asarray(reps, dtype=np.float64))


def set_pair(base: Side, new: Side, key: tuple[str, str], metric: str,
             resamples: int = RESAMPLES) -> SetPair | None:  # fmt: skip
    """Both sides of ``metric`` for entry ``key`` on the baseline's images (None: the
    baseline measured none), with ``resamples`` replicates, or as many as a baseline file
    among the sides holds (two baseline files must hold as many)."""
    stored = [
        (side.sets.get(key) or {}).get(metric) if side.sets is not None else None
        for side in (base, new)
    ]
    held = [len(s.replicates) for s in stored if s is not None and len(s.replicates)]
    if len(set(held)) > 1:
        raise DataError(
            f"{metric} of {key[1]}/{key[0]}: the two baselines hold {held[0]} and {held[1]} "
            "bootstrap replicates, which cannot be paired; rewrite one with --update"
        )
    resamples = held[0] if held else resamples
    if base.sets is not None:
        base_sample = stored[0]
    else:
        series = (base.series or {}).get(key)
        indices = series["index"].tolist() if series is not None else []
        base_sample = measure(base, key, metric, indices, resamples) if indices else None
    if base_sample is None or not base_sample.indices:
        return None
    if new.sets is not None:
        same = stored[1] is not None and stored[1].indices == base_sample.indices
        return SetPair(base_sample, stored[1] if same else None)
    measured = set(((new.series or {}).get(key) or {"index": np.zeros(0)})["index"].tolist())
    if not set(base_sample.indices) <= measured:
        return SetPair(base_sample, None)
    return SetPair(base_sample, measure(new, key, metric, base_sample.indices, resamples))


def per_set_section(side: Side, metrics: Sequence[str], gated: int) -> dict[str, Any]:
    """The ``per_set`` section of a baseline written from the run folder ``side``: every
    entry's set metrics on the images it measured, with as many replicates as a gate of
    every entry and the ``gated`` metrics needs (:func:`resamples_for`)."""
    resamples = resamples_for(len(side.entries()) * gated)
    section: dict[str, Any] = {"_about": ABOUT}
    for key in side.entries():
        mask, method = key
        series = (side.series or {}).get(key)
        indices = series["index"].tolist() if series is not None else []
        for metric in metrics:
            sample = measure(side, key, metric, indices, resamples)
            section.setdefault(mask, {}).setdefault(method, {})[metric] = {
                "indices": list(sample.indices),
                "value": sample.value,
                "replicates": sample.replicates.tolist(),
            }
    return section

"""Is a difference real? Paired comparisons between methods, and mask-ratio buckets.

Two methods of one table were measured on the same images with the same holes, so they are
compared **per image**: the differences ``a - b`` of PSNR (and SSIM) on every image both
measured. :func:`compare_pairs` decides on them with the one rule of :mod:`benchmark.decision`
(mean difference, seeded 10,000-resample bootstrap CI, significant iff the CI excludes 0, a
p-value that agrees with the CI, a verdict and the count of broken images), with the Wilcoxon
signed-rank p-value as a secondary column that never decides.

Mask-ratio buckets are the bins of the NVIDIA irregular-mask protocol (Liu et al. 2018):
``[0, 1 %]``, ``(1 %, 10 %]``, ``(10 %, 20 %]``, ... ``(50 %, 60 %]``, plus ``(60 %, 100 %]``
(closed on the right, like the published bins). Each method's mean metrics are reported per
bucket over **its own** successful images, with the image count, so a bucket shows both how a
method does at that hole size and how many images it completed there.

>>> a = {"index": np.arange(4), "psnr": np.array([30.0, 31.0, 32.0, 33.0])}
>>> b = {"index": np.arange(1, 5), "psnr": np.array([30.0, 31.0, 32.0, 40.0])}
>>> [row["psnr"]["mean"] for row in compare_pairs({"a": a, "b": b}, [("a", "b")], ["psnr"])]
[1.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from benchmark.decision import (
    ALPHA,
    BROKEN_AT,
    TOLERANCES,
    Decision,
    ResampleCounts,
    decide_pairs,
    wilcoxon_p,
)

__all__ = ["wilcoxon_p"]  # re-exported: the secondary column lives with the rule

#: The level of every decision (:data:`benchmark.decision.ALPHA`).
SIGNIFICANCE_LEVEL = ALPHA
#: Metrics compared image by image between methods (higher is better for both).
PAIRED_METRICS = ("psnr", "ssim")
#: Edges of the mask-ratio buckets (fraction of hole pixels): the NVIDIA irregular-mask bins,
#: ``[0, 0.01]``, ``(0.01, 0.1]``, ``(0.1, 0.2]``, ..., ``(0.5, 0.6]``, ``(0.6, 1]``.
BUCKET_EDGES = (0.0, 0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.0)
#: Ratios are rounded to this many decimals before binning: a ratio stored from float32
#: (0.1 as 0.10000000149) stays in the bin its exact pixel fraction belongs to.
RATIO_DECIMALS = 7
#: Metrics averaged per bucket.
BUCKET_METRICS = ("psnr", "ssim", "hole_psnr")

#: Per-image values of one method on one mask: ``{"index": int array (sorted), metric: array}``.
Series = Mapping[str, np.ndarray]


def common_values(a: Series, b: Series, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Values of ``metric`` of ``a`` and ``b`` on the image indices both measured, aligned."""
    _, ia, ib = np.intersect1d(a["index"], b["index"], assume_unique=True, return_indices=True)
    return np.asarray(a[metric])[ia], np.asarray(b[metric])[ib]


def compare_pairs(
    series: Mapping[str, Series],
    pairs: Sequence[tuple[str, str]],
    metrics: Sequence[str] = PAIRED_METRICS,
    counts: ResampleCounts | None = None,
) -> list[dict[str, Any]]:
    """The decision on ``a - b`` for each ``(a, b)`` of ``pairs``, per metric, over the images
    both measured: ``[{"a", "b", "n", <metric>: Decision.as_dict()}]``.

    Tolerances and broken-image thresholds per metric: :data:`benchmark.decision.TOLERANCES`
    and :data:`benchmark.decision.BROKEN_AT`. When every series holds the same images (a
    leaderboard's ranked methods on their common images) one resampling serves every pair and
    metric; the numbers equal each pair decided alone on its common images. ``counts`` keeps
    the resample counts for other calls (a leaderboard's tables).
    """
    names = list(dict.fromkeys(name for pair in pairs for name in pair))
    indices = [np.asarray(series[m]["index"]) for m in names]
    shared = all(np.array_equal(i, indices[0]) for i in indices[1:])
    if shared and names:
        decided = _decide_on_shared_images(series, names, pairs, metrics, counts)
    else:
        decided = [_decide_pair(series[a], series[b], metrics, counts) for a, b in pairs]
    rows = []
    for (a, b), decisions in zip(pairs, decided):
        row: dict[str, Any] = {"a": a, "b": b}
        row.update({metric: d.as_dict() for metric, d in zip(metrics, decisions)})
        row["n"] = decisions[0].n if decisions else 0
        rows.append(row)
    return rows


def _thresholds(metrics: Sequence[str]) -> tuple[list[float], list[float]]:
    return (
        [TOLERANCES.get(m, 0.0) for m in metrics],
        [BROKEN_AT.get(m, math.inf) for m in metrics],
    )


def _decide_on_shared_images(
    series: Mapping[str, Series],
    names: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    metrics: Sequence[str],
    counts: ResampleCounts | None,
) -> list[list[Decision]]:
    """Every pair and metric on one resampling: columns ``(metric, method)``."""
    column = {(metric, m): j for j, (metric, m) in enumerate(
        (metric, m) for metric in metrics for m in names
    )}  # fmt: skip
    values = np.column_stack(
        [np.asarray(series[m][metric], dtype=np.float64) for metric in metrics for m in names]
    ) if metrics else np.empty((0, 0))  # fmt: skip
    tolerances, broken = _thresholds(metrics)
    flat = [(column[metric, a], column[metric, b]) for a, b in pairs for metric in metrics]
    decisions = decide_pairs(
        values,
        flat,
        tolerance=[t for _ in pairs for t in tolerances],
        broken_at=[x for _ in pairs for x in broken],
        counts=counts,
    )
    k = len(metrics)
    return [decisions[i * k : (i + 1) * k] for i in range(len(pairs))]


def _decide_pair(
    a: Series, b: Series, metrics: Sequence[str], counts: ResampleCounts | None
) -> list[Decision]:
    """One pair on the images both measured (all its metrics on one resampling)."""
    columns = []
    for metric in metrics:
        columns += common_values(a, b, metric)
    values = np.column_stack(columns) if columns else np.empty((0, 0))
    tolerances, broken = _thresholds(metrics)
    pairs = [(2 * j, 2 * j + 1) for j in range(len(metrics))]
    return decide_pairs(values, pairs, tolerance=tolerances, broken_at=broken, counts=counts)


def pairwise_comparisons(
    series: Mapping[str, Series],
    order: Sequence[str],
    metrics: Sequence[str] = PAIRED_METRICS,
) -> list[dict[str, Any]]:
    """Every pair of methods of one table, ``a`` before ``b`` in ``order`` (e.g. by rank),
    decided as :func:`compare_pairs` does."""
    names = [m for m in order if m in series]
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    return compare_pairs(series, pairs, metrics)


def bucket_of(ratio: np.ndarray, edges: Sequence[float] = BUCKET_EDGES) -> np.ndarray:
    """Bucket number of each mask ratio: bucket 0 is ``[edges[0], edges[1]]``, bucket ``k``
    is ``(edges[k], edges[k + 1]]``; values outside the edges go to the first or last bucket.

    >>> bucket_of(np.array([0.0, 0.01, 0.0101, 0.1, 0.10000000149, 0.35, 0.6, 0.61, 1.0])).tolist()
    [0, 0, 1, 1, 1, 4, 6, 7, 7]
    """
    rounded = np.round(np.asarray(ratio, dtype=np.float64), RATIO_DECIMALS)
    inner = np.asarray(edges[1:-1], dtype=np.float64)
    return np.searchsorted(inner, rounded, side="left").astype(int)


def bucket_label(low: float, high: float) -> str:
    """``"10–20 %"``: a bucket's bounds in percent (intervals are closed on the right)."""
    return f"{low * 100:g}–{high * 100:g} %"


def ratio_buckets(
    series: Mapping[str, Series],
    metrics: Sequence[str] = BUCKET_METRICS,
    edges: Sequence[float] = BUCKET_EDGES,
) -> list[dict[str, Any]]:
    """Per mask-ratio bucket, each method's image count and mean ``metrics``.

    Every series needs a ``mask_ratio`` array. Every bucket of ``edges`` is listed, empty ones
    with ``n = 0`` and ``None`` means, so tables of different runs line up; per method the
    counts sum to the number of images the method measured. No series at all gives ``[]``.
    """
    if not any(len(s["mask_ratio"]) for s in series.values()):
        return []
    buckets = {name: bucket_of(s["mask_ratio"], edges) for name, s in series.items()}
    rows = []
    for k in range(len(edges) - 1):
        low, high = float(edges[k]), float(edges[k + 1])
        methods: dict[str, dict[str, Any]] = {}
        for name, s in series.items():
            inside = buckets[name] == k
            methods[name] = {"n": int(inside.sum())}
            for metric in metrics:
                values = np.asarray(s[metric])[inside] if metric in s else np.empty(0)
                methods[name][metric] = float(values.mean()) if len(values) else None
        rows.append(
            {"low": low, "high": high, "label": bucket_label(low, high), "methods": methods}
        )
    return rows

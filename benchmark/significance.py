"""Is a difference real? Paired tests between methods and mask-ratio buckets.

Two methods of one table were measured on the same images with the same holes, so they are
compared **per image**: the difference ``a - b`` of PSNR (and SSIM) on every image both
measured, its mean with a 95 % percentile-bootstrap CI (:mod:`benchmark.stats`, 1,000
resamples over images) and the two-sided p-value of the Wilcoxon signed-rank test
(``scipy.stats.wilcoxon``, zero differences dropped, as Wilcoxon did; all differences zero
gives p = 1). A difference is called *significant* when ``p < 0.05``.

Mask-ratio buckets are the bins of the NVIDIA irregular-mask protocol (Liu et al. 2018):
``[0, 1 %]``, ``(1 %, 10 %]``, ``(10 %, 20 %]``, ... ``(50 %, 60 %]``, plus ``(60 %, 100 %]``
(closed on the right, like the published bins). Each method's mean metrics are reported per
bucket over **its own** successful images, with the image count, so a bucket shows both how a
method does at that hole size and how many images it completed there.

>>> a = {"index": np.arange(4), "psnr": np.array([30.0, 31.0, 32.0, 33.0])}
>>> b = {"index": np.arange(1, 5), "psnr": np.array([30.0, 31.0, 32.0, 40.0])}
>>> d = compare_series(a, b, "psnr")   # images 1, 2, 3 in common
>>> d.n, d.mean
(3, 1.0)
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from benchmark.stats import Resamples, bootstrap_means, from_bootstrap, summarize

#: A difference with a Wilcoxon p-value below this is called significant.
SIGNIFICANCE_LEVEL = 0.05
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


@dataclass(frozen=True)
class PairedDifference:
    """Mean of per-image differences ``a - b`` with its bootstrap CI and Wilcoxon p-value."""

    n: int
    mean: float
    ci_low: float
    ci_high: float
    p_value: float

    @property
    def significant(self) -> bool:
        """``p < 0.05`` (False when nothing was compared)."""
        return self.p_value < SIGNIFICANCE_LEVEL  # NaN compares False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_WARNINGS_LOCK = threading.Lock()


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired ``differences``.

    Zero differences are dropped (``zero_method="wilcox"``); when every difference is zero
    there is no evidence of any difference and the p-value is 1. No values gives NaN.

    >>> wilcoxon_p(np.zeros(5))
    1.0
    >>> wilcoxon_p(np.arange(1.0, 11.0)) < 0.01
    True
    """
    from scipy.stats import wilcoxon

    differences = np.asarray(differences, dtype=np.float64)
    if len(differences) == 0:
        return float("nan")
    if not np.any(differences):
        return 1.0
    # some scipy versions warn when they fall back from the exact test. catch_warnings swaps the
    # process-wide filter list and is not thread-safe: leaderboard tables are built in threads,
    # and two interleaved blocks could leave "ignore" installed for good. Hence the lock.
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(wilcoxon(differences, zero_method="wilcox").pvalue)


def paired_difference(
    a: np.ndarray, b: np.ndarray, indices: np.ndarray | None = None
) -> PairedDifference:
    """Compare paired values ``a[i]`` and ``b[i]`` (same image ``i``): statistics of ``a - b``.

    ``indices`` are bootstrap resample indices for ``len(a)`` values
    (:func:`benchmark.stats.bootstrap_indices`; drawn here when omitted).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need equal 1-d shapes, got {a.shape} and {b.shape}")
    differences = a - b
    summary = summarize(differences, indices if len(differences) >= 2 else None)
    return PairedDifference(
        summary.n, summary.mean, summary.ci_low, summary.ci_high, wilcoxon_p(differences)
    )


def common_values(a: Series, b: Series, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Values of ``metric`` of ``a`` and ``b`` on the image indices both measured, aligned."""
    _, ia, ib = np.intersect1d(a["index"], b["index"], assume_unique=True, return_indices=True)
    return np.asarray(a[metric])[ia], np.asarray(b[metric])[ib]


def compare_series(
    a: Series, b: Series, metric: str, resamples: Resamples | None = None
) -> PairedDifference:
    """Paired difference ``a - b`` of ``metric`` over the images both series hold."""
    values_a, values_b = common_values(a, b, metric)
    resamples = resamples or Resamples()
    return paired_difference(values_a, values_b, resamples(len(values_a)))


def pairwise_comparisons(
    series: Mapping[str, Series],
    order: Sequence[str],
    resamples: Resamples | None = None,
    metrics: Sequence[str] = PAIRED_METRICS,
) -> list[dict[str, Any]]:
    """Every pair of methods of one table, ``a`` before ``b`` in ``order`` (e.g. by rank).

    Returns ``[{"a", "b", "n", <metric>: {mean, ci_low, ci_high, p_value, n}}]`` where each
    metric's numbers describe ``a - b`` over the images both methods measured. ``resamples``
    may be shared with the table's own summaries.
    """
    resamples = resamples or Resamples()
    names = [m for m in order if m in series]
    shared = _SharedImages.of(series, names, resamples)
    comparisons = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            row: dict[str, Any] = {"a": a, "b": b}
            for metric in metrics:
                if shared is not None:
                    row[metric] = shared.compare(a, b, metric).as_dict()
                else:
                    row[metric] = compare_series(series[a], series[b], metric, resamples).as_dict()
            row["n"] = row[metrics[0]]["n"] if metrics else 0
            comparisons.append(row)
    return comparisons


class _SharedImages:
    """Pairwise comparisons when every method holds the same images (a leaderboard's ranked
    methods on their common images): the bootstrap mean of ``a - b`` in a resample is the mean
    of ``a`` minus the mean of ``b`` in it, so each method's resample means are computed once
    and every pair costs a subtraction instead of a gather over all images (``k`` methods:
    ``k`` gathers instead of ``k (k - 1) / 2``). The intervals equal those of
    :func:`paired_difference` up to float rounding (tested)."""

    def __init__(self, series: Mapping[str, Series], indices: np.ndarray | None) -> None:
        self.series, self.indices = series, indices
        self._means: dict[tuple[str, str], np.ndarray] = {}

    @classmethod
    def of(
        cls, series: Mapping[str, Series], names: Sequence[str], resamples: Resamples
    ) -> _SharedImages | None:
        if len(names) < 3:  # one pair: nothing to share
            return None
        first = np.asarray(series[names[0]]["index"])
        if any(not np.array_equal(np.asarray(series[m]["index"]), first) for m in names[1:]):
            return None
        return cls(series, resamples(len(first)))

    def _resample_means(self, method: str, metric: str) -> np.ndarray:
        key = (method, metric)
        if key not in self._means:
            self._means[key] = bootstrap_means(self.series[method][metric], self.indices)
        return self._means[key]

    def compare(self, a: str, b: str, metric: str) -> PairedDifference:
        values_a = np.asarray(self.series[a][metric], dtype=np.float64)
        values_b = np.asarray(self.series[b][metric], dtype=np.float64)
        if self.indices is None:  # fewer than two images: the plain path
            return paired_difference(values_a, values_b)
        differences = values_a - values_b
        means = self._resample_means(a, metric) - self._resample_means(b, metric)
        summary = from_bootstrap(float(differences.mean()), means, len(differences))
        return PairedDifference(
            summary.n, summary.mean, summary.ci_low, summary.ci_high, wilcoxon_p(differences)
        )


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

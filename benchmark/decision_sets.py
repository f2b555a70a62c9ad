"""The decision rule of :mod:`benchmark.decision` for a set metric (FID, KID): a difference
known by paired bootstrap replicates over images instead of per-image differences.

A set metric has no per-image values, so its uncertainty comes from resampling the images
(:mod:`benchmark.perceptual.set_bootstrap`): replicate ``b`` of the difference NEW - BASELINE
is the metric of resample ``b`` on NEW minus that of the same resample on BASELINE. The
interval is the plain percentile interval of the ``B`` replicates and the p-value the share
of replicates on the far side of 0, ``p = min(1, 2 (c + 1) / (B + 1))`` for ``c`` replicates
``<= 0`` or ``>= 0`` (whichever is fewer) -- the same p-value and interval table
(:func:`benchmark.decision._tail`, order statistics of :func:`benchmark.decision._bounds`) as
the means use, without their small-sample expansion (derived for means: t quantiles and
``n / (n - 1)``). So ``p < alpha`` exactly when the interval excludes 0. The smallest p is
``2 / (B + 1)`` (0.002 at B = 1,000). :func:`benchmark.decision.decide_family` decides
:class:`Replicated` members in one Holm family with the per-image ones.

>>> rng = np.random.default_rng(0)
>>> member = Replicated(0.5, 0.5 + 0.1 * rng.normal(size=999), n=20)
>>> d = decide_family([member], tolerance=0.1)[0]
>>> d.verdict, d.p, d.ci_low > 0, d.n, d.resamples
('better', 0.002, True, 20, 999)
>>> decide_family([Replicated(0.0, np.zeros(999), n=20)], tolerance=0.1)[0].verdict
'no change'
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from benchmark.decision import _tail, decide_family

__all__ = ["MIN_IMAGES", "Replicated", "decide_family", "percentile_levels"]

#: Fewer images than this give no interval (p = 1): the bootstrap of a set needs some.
MIN_IMAGES = 3


@lru_cache(maxsize=16)
def percentile_levels(resamples: int, alpha: float) -> tuple[np.ndarray, int]:
    """``(p_of_count, k)``: ``p = 2 (c + 1) / (B + 1)`` for each count ``c`` (0..B) of
    replicates beyond 0, and ``k``, the largest count whose ``p`` is below ``alpha``
    (``-1``: no interval at this level): ``[s[k], s[B - 1 - k]]`` of the sorted replicates
    excludes 0 exactly when ``p < alpha``.

    >>> p, k = percentile_levels(999, 0.05)
    >>> float(p[0]), k, bool(p[k] < 0.05 <= p[k + 1])
    (0.002, 23, True)
    """
    p = _tail(resamples)
    p.setflags(write=False)
    return p, int(np.searchsorted(p, alpha, side="left")) - 1


@dataclass(frozen=True)
class Replicated:
    """A set metric's difference on all ``n`` images and its paired bootstrap replicates."""

    difference: float
    replicates: np.ndarray  # (B,): one per image resample, NEW - BASELINE of the same draw
    n: int

    @property
    def decidable(self) -> bool:
        """Enough images and replicates for an interval."""
        return self.n >= MIN_IMAGES and len(self.replicates) > 0

    def checked(self) -> np.ndarray:
        """The replicates as finite float64 ``(B,)`` (a ValueError otherwise)."""
        values = np.asarray(self.replicates, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(values)):
            raise ValueError("bootstrap replicates must be finite")
        return values

    def levels(self, alpha: float) -> tuple[np.ndarray, int]:
        """:func:`percentile_levels` of these replicates at level ``alpha``."""
        return percentile_levels(len(self.replicates), alpha)

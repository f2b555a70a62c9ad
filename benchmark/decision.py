"""The decision rule: is a difference in mean per-image metric real, and which way does it go?

Every place that says *better*, *worse*, *tie* or ``≈`` decides with this module, on the
statistic the tables show: the **mean** of the paired per-image differences ``d = a - b`` (the
same images, the same holes, one value per image).

**The rule.** The 95 % confidence interval of the mean of ``d`` is a percentile bootstrap over
images: :data:`RESAMPLES` (10,000) resamples drawn with replacement by a seeded generator
(:data:`SEED`), so the same data always give the same interval. The interval is *expanded* for
small samples (Hesterberg 2015: the percentile level is taken at
``2 Φ(-sqrt(n / (n - 1)) t_{n-1, 1-α/2})`` instead of ``α``), which matters only below about 100
images (3,576 images: 95.01 % instead of 95 %) and keeps two or three images from ever being
"significant". The difference is **significant iff the interval excludes 0**. The printed
``p`` is the bootstrap p-value of that interval: the smallest ``α`` at which the interval would
touch 0, from the share of resample means on the far side of 0 (``2 (c + 1) / (B + 1)``, mapped
through the same expansion). Both come from one table (:func:`_levels`), so ``p < α`` **iff**
the interval excludes 0, by construction. Wilcoxon's signed-rank p-value may be shown beside
it; it tests the median and never decides.

**Verdicts.** ``better`` / ``worse`` when significant; otherwise ``no change`` when the interval
lies inside ``±tolerance`` (no change larger than the tolerance), else ``inconclusive``, with
``images_needed``: a first-order estimate of the images that would settle it, ``n (h / g)²`` for
the interval's half-width ``h`` and the gap ``g`` it must fit (``|d|`` to exclude 0, or
``tolerance - |d|`` to fit inside the tolerance; ``n (h / tolerance)²`` when ``d = 0``),
assuming the per-image spread stays as measured. ``n_broken`` counts the images worse by more
than ``broken_at`` (default 5 dB PSNR): a mean can move because a few images broke.

**Exact and fast.** The resample means of many columns of values of the same images are one
matrix product of the resample counts (multinomial, from the drawn indices) with the values.
The values are first put on a binary grid fine enough that every sum is an exact integer in
float64 (resolution ``n · max|x| / 2**51``, 2e-10 dB for 3,576 PSNR values), so the result does
not depend on the BLAS library or its threads, and the resample means of ``a - b`` are those of
``a`` minus those of ``b`` to the bit: a table's pairs need one product for all methods, and
an image on which ``a`` equals ``b`` contributes exactly 0.

**Families.** :func:`holm` is Holm's step-down correction over a family of p-values (the
gate's entries), :func:`holm_adjusted` the adjusted p-values that agree with it, and
:func:`decide_family` decides a family with each interval at the level Holm tested it; set
metrics join it as :class:`~benchmark.decision_sets.Replicated` members.

>>> d = decide(np.full(50, 0.3) + np.linspace(-0.1, 0.1, 50), tolerance=0.05)
>>> d.verdict, d.significant, d.p < ALPHA, d.ci_low > 0
('better', True, True, True)
>>> decide(np.zeros(40), tolerance=0.05).verdict
'no change'
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

#: Level of the decisions: significant when the (1 - ALPHA) interval excludes 0.
ALPHA = 0.05
#: Bootstrap resamples of every decision (at least 10,000).
RESAMPLES = 10_000
#: Seed of the resamples: the same images always give the same interval.
SEED = 0
#: Default tolerances (the gate's): changes within them are "no change" when not significant;
#: a metric not named here (a plug-in's) has 0. LPIPS and MS-SSIM: 0.001, the last decimal
#: papers print them with; hole PSNR as PSNR; hole L1: 0.001, a quarter of an 8-bit level.
TOLERANCES = {
    "psnr": 0.05,
    "ssim": 0.001,
    "hole_psnr": 0.05,
    "hole_l1": 0.001,
    "lpips-alex": 0.001,
    "lpips-vgg": 0.001,
    "lpips-squeeze": 0.001,
    "ms-ssim": 0.001,
}
#: An image is *broken* when it got worse by more than this (per metric).
BROKEN_AT = {"psnr": 5.0, "ssim": 0.05}

BETTER, WORSE, NO_CHANGE, INCONCLUSIVE = "better", "worse", "no change", "inconclusive"
VERDICTS = (BETTER, WORSE, NO_CHANGE, INCONCLUSIVE)
#: Resample counts multiplied per block (a block of float64 counts: 8 MB).
_BLOCK_VALUES = 1 << 20


@dataclass(frozen=True)
class Decision:
    """The decision on one set of paired differences ``a - b`` (``higher_is_better``)."""

    difference: float  # mean of the per-image differences
    ci_low: float  # bounds of the (1 - alpha) interval; ±inf when n is too small to bound it
    ci_high: float
    p: float  # < alpha iff the interval excludes 0
    n: int
    significant: bool
    verdict: str  # one of VERDICTS
    n_broken: int  # images worse by more than broken_at
    tolerance: float
    broken_at: float
    images_needed: int | None  # inconclusive only: first-order estimate
    alpha: float = ALPHA
    resamples: int = RESAMPLES
    p_is_bound: bool = False  # no resample mean on the far side of 0: p is at most this
    p_adjusted: float | None = None  # Holm's, in a family (decide_family)
    wilcoxon_p: float | None = None  # secondary: a test of the median, never decides

    def as_dict(self) -> dict[str, Any]:
        """The fields for JSON, ``difference`` and ``p`` under the leaderboard's names ``mean``
        and ``p_value``."""
        fields = asdict(self)
        fields["mean"], fields["p_value"] = fields.pop("difference"), fields.pop("p")
        return fields


# -- resampling -------------------------------------------------------------------------------
def to_grid(values: np.ndarray) -> tuple[np.ndarray, float]:
    """``(q, unit)``: ``values ≈ q * unit`` with integer ``q`` small enough that any resample
    sum of ``n = len(values)`` of them, and the difference of two such sums, is exact in
    float64 (``n · max|q| <= 2**51``: sums and their differences stay below ``2**53``)."""
    values = np.asarray(values, dtype=np.float64)
    largest = float(np.max(np.abs(values))) if values.size else 0.0
    if not math.isfinite(largest):
        raise ValueError("the values to resample must be finite")
    if largest == 0.0:
        return np.zeros_like(values), 1.0
    n = max(1, values.shape[0])
    exponent = min(1000, math.floor(math.log2(2.0**51 / (n * largest))))
    return np.rint(np.ldexp(values, exponent)), math.ldexp(1.0, -exponent)


def resample_sums(
    q: np.ndarray,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    counts: ResampleCounts | None = None,
) -> np.ndarray:
    """``(resamples, columns)`` sums of the rows of ``q`` (``(n, columns)``) in each bootstrap
    resample of the ``n`` rows: the resample counts times ``q``, block by block.

    The resamples depend only on ``n``, ``resamples`` and ``seed``: every column, and every
    call with the same ``n``, uses the same ones (paired). ``counts`` keeps them between calls.
    """
    q = np.asarray(q, dtype=np.float64)
    counts = counts or ResampleCounts(resamples, seed, keep_bytes=0)
    sums = np.empty((resamples, q.shape[1]))
    for start, block in counts.blocks(q.shape[0], resamples, seed):
        sums[start : start + len(block)] = block.astype(np.float64) @ q
    return sums


class ResampleCounts:
    """Bootstrap resample counts (how often each of ``n`` images is drawn in each resample),
    drawn by a seeded generator and kept as bytes for the next call with the same ``n``: the
    tables of one leaderboard share them (10,000 x 3,576 counts: 36 MB, drawn in ~0.3 s).
    Counts above ``keep_bytes`` (64 MB: 6,710 images) are drawn again for every call instead
    (the same numbers).
    Thread-safe: a second table waits for the first to draw them."""

    def __init__(
        self, resamples: int = RESAMPLES, seed: int = SEED, keep_bytes: int = 64 << 20
    ) -> None:
        self.resamples, self.seed, self.keep_bytes = resamples, seed, keep_bytes
        self._kept: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def blocks(self, n: int, resamples: int, seed: int) -> Iterator[tuple[int, np.ndarray]]:
        """``(first resample, counts of a block of resamples)`` for ``n`` images."""
        rows = max(1, min(resamples, _BLOCK_VALUES // max(n, 1)))
        if (resamples, seed) != (self.resamples, self.seed) or resamples * n > self.keep_bytes:
            yield from _draw_counts(n, resamples, seed, rows)
            return
        with self._lock:
            if n not in self._kept:
                self._kept[n] = np.concatenate(
                    [_small(block) for _, block in _draw_counts(n, resamples, seed, rows)]
                )
        kept = self._kept[n]
        for start in range(0, resamples, rows):
            yield start, kept[start : start + rows]


def _draw_counts(n: int, resamples: int, seed: int, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """The resample counts of ``n`` images, ``rows`` resamples at a time: indices drawn with
    replacement (16-bit below 65,536 images), counted per resample."""
    rng = np.random.default_rng(seed)
    dtype = np.uint16 if n <= 1 << 16 else np.int64
    offsets = np.arange(rows, dtype=np.int64)[:, None] * n
    for start in range(0, resamples, rows):
        r = min(rows, resamples - start)
        drawn = rng.integers(0, n, size=(r, n), dtype=dtype)
        counts = np.bincount((drawn + offsets[:r]).ravel(), minlength=r * n)
        yield start, counts.reshape(r, n)


def _small(counts: np.ndarray) -> np.ndarray:
    """Counts in the smallest unsigned type that holds them (bytes in practice)."""
    return counts.astype(np.min_scalar_type(int(counts.max()) if counts.size else 0))


def _tail(resamples: int) -> np.ndarray:
    """Per count ``c`` (0..B) of resamples beyond 0, its level ``2 (c + 1) / (B + 1)``."""
    return np.minimum(1.0, 2.0 * (np.arange(resamples + 1.0) + 1.0) / (resamples + 1.0))


@lru_cache(maxsize=64)
def _levels(n: int, resamples: int, alpha: float) -> tuple[np.ndarray, int]:
    """``(p_of_count, k)``: the p-value for each count ``c`` (0..B) of resample means on the
    far side of 0, and the order statistic ``k`` of the interval (``-1``: unbounded).

    ``p`` is increasing in ``c``; ``k`` is the largest count whose ``p`` is below ``alpha``,
    so the interval ``[s[k], s[B - 1 - k]]`` of the sorted resample means excludes 0 exactly
    when ``p < alpha``.
    """
    from scipy.special import ndtri, stdtr

    tail = _tail(resamples)  # percentile level reached
    if n < 2:
        p = np.ones_like(tail)
    else:  # undo the expansion: percentile level -> the alpha whose expanded level it is
        z = ndtri(1.0 - tail / 2.0)
        p = np.minimum(1.0, 2.0 * stdtr(n - 1, -z * math.sqrt((n - 1) / n)))
    p = np.maximum.accumulate(p)  # monotone against float rounding
    p.setflags(write=False)
    return p, int(np.searchsorted(p, alpha, side="left")) - 1


# -- decisions --------------------------------------------------------------------------------
def decide(
    differences: np.ndarray,
    tolerance: float = 0.0,
    broken_at: float = math.inf,
    alpha: float = ALPHA,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    higher_is_better: bool = True,
    wilcoxon: bool = True,
) -> Decision:
    """The decision on one set of paired per-image ``differences`` (``a - b``)."""
    d = np.asarray(differences, dtype=np.float64).reshape(-1, 1)
    return decide_columns(
        d, tolerance, broken_at, alpha, resamples, seed, higher_is_better, wilcoxon
    )[0]


def decide_columns(
    differences: np.ndarray,
    tolerance: float | Sequence[float] = 0.0,
    broken_at: float | Sequence[float] = math.inf,
    alpha: float = ALPHA,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    higher_is_better: bool = True,
    wilcoxon: bool = True,
) -> list[Decision]:
    """One decision per column of ``differences`` (``(n, columns)``: the same images), all on
    the same resamples; ``tolerance`` and ``broken_at`` may be given per column."""
    d = _matrix(differences, "differences")
    return decide_pairs(
        np.column_stack([d, np.zeros((d.shape[0], 1))]),
        [(j, d.shape[1]) for j in range(d.shape[1])],
        tolerance, broken_at, alpha, resamples, seed, higher_is_better, wilcoxon,
    )  # fmt: skip


def decide_pairs(
    values: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    tolerance: float | Sequence[float] = 0.0,
    broken_at: float | Sequence[float] = math.inf,
    alpha: float = ALPHA,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    higher_is_better: bool = True,
    wilcoxon: bool = True,
    counts: ResampleCounts | None = None,
) -> list[Decision]:
    """Decisions on ``values[:, a] - values[:, b]`` for each ``(a, b)`` of ``pairs``;
    ``tolerance`` and ``broken_at`` may be given per pair, ``counts`` kept between calls.

    ``values`` is ``(n, columns)``: per-image values of several methods on the same images.
    One resampling serves every pair (a product with the columns, not with each pair); the
    resample means of a pair are exactly those of its differences on the grid of ``values``,
    and ``(b, a)`` mirrors ``(a, b)`` exactly (Wilcoxon's p-value is computed once for both).
    """
    values = _matrix(values, "values")
    tolerances = _per_pair(tolerance, len(pairs), "tolerance")
    broken = _per_pair(broken_at, len(pairs), "broken_at")
    _check_alpha(alpha)
    n = values.shape[0]
    far = np.full(len(pairs), resamples)
    bounds = np.full((len(pairs), 2), [-math.inf, math.inf])
    if n >= 2 and pairs:
        q, unit = to_grid(values)
        sums = resample_sums(q, resamples, seed, counts)
        k = _levels(n, resamples, alpha)[1]
        for start in range(0, len(pairs), _PAIRS_AT_ONCE):  # (B, pairs) at a time
            chunk = np.asarray(pairs[start : start + _PAIRS_AT_ONCE]).reshape(-1, 2)
            d = sums[:, chunk[:, 0]] - sums[:, chunk[:, 1]]  # integers below 2**53: exact
            far[start : start + len(chunk)] = _far(d)
            if k >= 0:
                bounds[start : start + len(chunk)] = _bounds(d, k).T * (unit / n)
    p_of_count = _levels(n, resamples, alpha)[0]
    tests: dict[tuple[int, int], float | None] = {}
    decisions = []
    for j, ((a, b), tol, brk) in enumerate(zip(pairs, tolerances, broken)):
        differences = values[:, a] - values[:, b]
        key = (min(a, b), max(a, b))  # Wilcoxon's two-sided p of -d is that of d
        if key not in tests:
            tests[key] = wilcoxon_p(differences) if wilcoxon and n else None
        p = float(p_of_count[far[j]]) if n >= 2 else 1.0
        decision = _decision(differences, tuple(bounds[j]), p, tol, brk, alpha, resamples,
                             higher_is_better, tests[key])  # fmt: skip
        decisions.append(replace(decision, p_is_bound=bool(n >= 2 and far[j] == 0)))
    return decisions


def decide_family(
    differences: Sequence[Any],
    tolerance: float | Sequence[float] = 0.0,
    broken_at: float | Sequence[float] = math.inf,
    alpha: float = ALPHA,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    higher_is_better: bool = True,
    wilcoxon: bool = True,
    counts: ResampleCounts | None = None,
) -> list[Decision]:
    """Decisions on a family of comparisons (each its own per-image differences, or a set
    metric's :class:`~benchmark.decision_sets.Replicated` difference) with Holm's correction at
    family-wise error ``alpha``.

    Each decision's interval is at the level Holm tested it at: ``alpha / (m - i)`` for the
    ``i``-th smallest p-value (0-based), and, for the entries after Holm stopped, the level of
    the step where it stopped. Its ``alpha`` is that level, its ``p`` the bootstrap p-value
    and ``p_adjusted`` Holm's: significant iff the interval excludes 0 iff ``p < alpha`` iff
    ``p_adjusted`` is below the family's ``alpha``, by construction. Comparisons with the same
    number of images share one resampling; a ``Replicated`` member brings its own resamples.
    """
    _check_alpha(alpha)
    members = list(differences)
    sets = {j: m for j, m in enumerate(members) if hasattr(m, "replicates")}  # Replicated
    columns = [np.zeros(0) if j in sets else np.asarray(d, dtype=np.float64).reshape(-1)
               for j, d in enumerate(members)]  # fmt: skip
    tolerances = _per_pair(tolerance, len(columns), "tolerance")
    broken = _per_pair(broken_at, len(columns), "broken_at")
    sums: dict[int, tuple[np.ndarray, float]] = {}  # column -> (resample sums, grid unit)
    for n in {len(c) for c in columns if len(c) >= 2}:
        members_n = [j for j, c in enumerate(columns) if len(c) == n]
        q, unit = to_grid(_matrix(np.column_stack([columns[j] for j in members_n]), "differences"))
        resampled = resample_sums(q, resamples, seed, counts)
        sums.update({j: (resampled[:, i], unit) for i, j in enumerate(members_n)})
    sums.update({j: (m.checked(), 1.0) for j, m in sets.items() if m.decidable})
    far = [
        int(_far(sums[j][0][:, None])[0]) if j in sums else resamples for j in range(len(columns))
    ]

    def levels_of(j: int, level: float) -> tuple[np.ndarray, int]:
        return sets[j].levels(level) if j in sets else _levels(len(columns[j]), resamples, level)

    p = [float(levels_of(j, alpha)[0][far[j]]) if j in sums else 1.0 for j in range(len(columns))]
    adjusted, levels = holm_adjusted(p), holm_levels(p, alpha)
    decisions = []
    for j, column in enumerate(columns):
        bounds = (-math.inf, math.inf)
        k = levels_of(j, levels[j])[1] if j in sums else -1
        if k >= 0:
            raw, unit = sums[j]
            low, high = _bounds(raw[:, None], k)[:, 0] * unit / (1 if j in sets else len(column))
            bounds = (float(low), float(high))
        if j in sets:
            decision = _decided(float(sets[j].difference), sets[j].n, 0, bounds, p[j],
                                tolerances[j], broken[j], levels[j], len(sets[j].replicates),
                                higher_is_better, None)  # fmt: skip
        else:
            test = wilcoxon_p(column) if wilcoxon and len(column) else None
            decision = _decision(column, bounds, p[j], tolerances[j], broken[j], levels[j],
                                 resamples, higher_is_better, test)  # fmt: skip
        decisions.append(
            replace(decision, p_is_bound=j in sums and far[j] == 0, p_adjusted=adjusted[j])
        )
    return decisions


#: Pairs whose resample means are held at once (10,000 x 256 float64: 20 MB).
_PAIRS_AT_ONCE = 256


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _matrix(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"{name} must be (images, columns), got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be finite")
    return values


def _per_pair(value: float | Sequence[float], count: int, name: str) -> list[float]:
    if isinstance(value, (int, float)):
        values = [float(value)] * count
    else:
        values = [float(v) for v in value]
        if len(values) != count:
            raise ValueError(f"{name}: {len(values)} values for {count} comparisons")
    if any(not v >= 0 for v in values):
        raise ValueError(f"{name} must be >= 0")
    return values


def _far(sums: np.ndarray) -> np.ndarray:
    """Per column of resample sums, how many lie on the far side of 0 (0 included)."""
    return np.minimum(np.count_nonzero(sums <= 0, axis=0), np.count_nonzero(sums >= 0, axis=0))


def _bounds(sums: np.ndarray, k: int) -> np.ndarray:
    """``(2, columns)``: the ``k``-th smallest and ``k``-th largest resample sum per column."""
    last = len(sums) - 1 - k
    return np.partition(sums, [k, last], axis=0)[[k, last]]


def _decision(differences: np.ndarray, bounds: tuple[float, float], p: float, tolerance: float,
              broken_at: float, alpha: float, resamples: int, higher_is_better: bool,
              wilcoxon: float | None) -> Decision:  # fmt: skip
    n = len(differences)
    mean = float(np.mean(differences)) if n else math.nan
    worse_side = -differences if higher_is_better else differences
    n_broken = int(np.count_nonzero(worse_side > broken_at))
    return _decided(mean, n, n_broken, bounds, p, tolerance, broken_at, alpha, resamples,
                    higher_is_better, wilcoxon)  # fmt: skip


def _decided(mean: float, n: int, n_broken: int, bounds: tuple[float, float], p: float,
             tolerance: float, broken_at: float, alpha: float, resamples: int,
             higher_is_better: bool, wilcoxon: float | None) -> Decision:  # fmt: skip
    """The verdict of a difference ``mean`` over ``n`` images from its interval and p-value."""
    ci_low, ci_high = (float(b) for b in bounds)
    significant = p < alpha  # == the interval excludes 0, by construction (see _levels)
    needed = None
    if significant:
        up = (ci_low > 0) == higher_is_better
        verdict = BETTER if up else WORSE
    elif -tolerance <= ci_low and ci_high <= tolerance:
        verdict = NO_CHANGE
    else:
        verdict = INCONCLUSIVE
        needed = images_needed(n, mean, ci_low, ci_high, tolerance)
    return Decision(
        difference=mean,
        ci_low=ci_low,
        ci_high=ci_high,
        p=p,
        n=n,
        significant=significant,
        verdict=verdict,
        n_broken=n_broken,
        tolerance=float(tolerance),
        broken_at=float(broken_at),
        images_needed=needed,
        alpha=alpha,
        resamples=resamples,
        wilcoxon_p=wilcoxon,
    )


def images_needed(
    n: int, mean: float, ci_low: float, ci_high: float, tolerance: float
) -> int | None:
    """First-order estimate of the images an inconclusive comparison needs: the interval's
    half-width shrinks as ``1 / sqrt(n)``, so it fits a gap ``g`` at ``n (half-width / g)²``;
    the gap is ``|mean|`` (exclude 0) or ``tolerance - |mean|`` (fit inside the tolerance),
    whichever needs fewer. ``None`` when nothing can be estimated (no finite interval, or a
    zero mean with a zero tolerance).

    >>> images_needed(1000, 0.0, -0.1, 0.1, 0.05)  # 1000 * (0.1 / 0.05) ** 2
    4000
    """
    half = (ci_high - ci_low) / 2
    if n < 2 or not math.isfinite(half) or not math.isfinite(mean):
        return None
    gaps = [g for g in (abs(mean), tolerance - abs(mean)) if g > 0]
    if not gaps:
        return None
    return max(n + 1, math.ceil(n * (half / max(gaps)) ** 2))


_WARNINGS_LOCK = threading.Lock()


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired ``differences`` (the secondary column).

    It tests a shift of the median, not of the mean the tables show, and never decides. Zero
    differences are dropped (``zero_method="wilcox"``); all zero gives 1, none gives NaN.

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


# -- printing ---------------------------------------------------------------------------------
def signed(value: float | None, decimals: int = 2) -> str:
    """``+0.42``; more decimals (up to 6) where ``±0.00`` would hide the sign of a bound.

    >>> signed(0.4242), signed(0.004), signed(-0.00004), signed(0.0)
    ('+0.42', '+0.004', '-0.00004', '+0.00')
    """
    if value is None or not math.isfinite(value):
        return "n/a"
    while value != 0 and round(value, decimals) == 0 and decimals < 6:
        decimals += 1
    return f"{value:+.{decimals}f}"


def ci_text(d: dict[str, Any], decimals: int = 2) -> str:
    """``95 % CI +0.61 to +0.96`` (``unbounded`` when too few images bound it)."""
    level, low, high = f"{1 - d.get('alpha', ALPHA):.0%}"[:-1], d["ci_low"], d["ci_high"]
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return f"{level} % CI unbounded: too few images"
    return f"{level} % CI {signed(low, decimals)} to {signed(high, decimals)}"


def format_p(value: float | None, decision: dict[str, Any] | None = None) -> str:
    """``"= 0.0312"``, ``"< 1e-4"``, or ``"≤ 0.0003"`` when the ``decision``'s p-value is the
    bound its resamples resolve (no resample mean on the far side of 0)."""
    if value is None or not math.isfinite(value):
        return "= n/a"
    if (decision or {}).get("p_is_bound"):
        return f"≤ {math.ceil(value * 1e4) / 1e4:.4f}"
    return "< 1e-4" if value < 1e-4 else f"= {value:.4f}"


# -- families ---------------------------------------------------------------------------------
def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm's adjusted p-values: ``max_{j <= i} min(1, (m - j) p_(j))`` in sorted order, given
    back in the input order. Reject entry ``i`` at family-wise level ``α`` iff its adjusted
    p-value is below ``α`` (:func:`holm`). NaN counts as 1.

    >>> [round(p, 9) for p in holm_adjusted([0.01, 0.04, 0.03])]
    [0.03, 0.06, 0.06]
    """
    p = np.nan_to_num(np.asarray(p_values, dtype=np.float64), nan=1.0)
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled) if m else scaled
    return [float(v) for v in adjusted]


def holm_levels(p_values: Sequence[float], alpha: float = ALPHA) -> list[float]:
    """The level at which Holm tests each p-value: ``alpha / (m - i)`` for the ``i``-th
    smallest (0-based) up to the first that is not rejected, that step's level for the rest.
    An entry is rejected iff its p-value is below its level.

    >>> [round(a, 6) for a in holm_levels([0.01, 0.04, 0.03])]
    [0.016667, 0.025, 0.025]
    """
    p = np.nan_to_num(np.asarray(p_values, dtype=np.float64), nan=1.0)
    m, levels, stopped = len(p), np.empty(len(p)), None
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        levels[i] = level = alpha / (m - rank) if stopped is None else stopped
        if stopped is None and not p[i] < level:
            stopped = level  # Holm stops here: the rest keep this step's level
    return [float(v) for v in levels]


def holm(p_values: Sequence[float], alpha: float = ALPHA) -> list[bool]:
    """Holm's step-down rejections at family-wise error ``alpha``: sort the p-values, reject
    while ``p_(i) < alpha / (m - i)`` (0-based ``i``), stop at the first that is not.

    >>> holm([0.01, 0.04, 0.03]), holm([0.01, 0.02, 0.03])
    ([True, False, False], [True, True, True])
    """
    return [q < alpha for q in holm_adjusted(p_values)]

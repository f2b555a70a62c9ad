"""Calibration and contract tests of the one decision rule (benchmark.decision).

The null and coverage checks decide many synthetic data sets at once: each column of a matrix is
one data set, and every column is decided exactly as the rule decides any comparison (10,000
resamples, the rule's fixed seed: all columns with the same number of images share the
resamples, as every comparison of that size does in production). No check uses fewer resamples.
"""

from __future__ import annotations

import functools
import math
import re

import numpy as np
import pytest
from scipy import stats

from benchmark.decision import (
    ALPHA,
    BETTER,
    INCONCLUSIVE,
    NO_CHANGE,
    RESAMPLES,
    WORSE,
    ResampleCounts,
    decide,
    decide_columns,
    decide_family,
    decide_pairs,
    holm,
    holm_adjusted,
    holm_levels,
    images_needed,
    resample_sums,
    to_grid,
)
from benchmark.leaderboard import build_leaderboard
from benchmark.marks import TIED_MARK
from benchmark.tables import render_console, render_markdown, verdict_line

#: Null data sets per family (each a column): the binomial standard error of a 5 % rate over
#: 1,000 of them is 0.7 %.
NULLS = 1000
#: A false-alarm rate (coverage miss) may exceed ALPHA by three standard errors.
RATE_TOLERANCE = 3 * math.sqrt(ALPHA * (1 - ALPHA) / NULLS)


def _null_family(name: str, rng: np.random.Generator) -> np.ndarray:
    """``(images, NULLS)`` differences whose true mean is 0."""
    if name == "normal, 200 images":
        return rng.normal(0, 1, (200, NULLS))
    if name == "normal, 20 images":  # the small-sample expansion at work
        return rng.normal(0, 1, (20, NULLS))
    if name == "skewed, 200 images":
        return rng.exponential(1, (200, NULLS)) - 1
    if name == "heavy tails, 200 images":
        return rng.standard_t(3, (200, NULLS))
    if name == "1 % broken, 1,500 images":  # the shape: rare large losses, mean 0
        broken = rng.random((1500, NULLS // 4)) < 0.01
        values = np.where(broken, -10.0, rng.normal(0.1, 0.5, broken.shape))
        return values - (0.99 * 0.1 + 0.01 * -10.0)
    raise ValueError(name)


NULL_FAMILIES = [
    "normal, 200 images",
    "normal, 20 images",
    "skewed, 200 images",
    "heavy tails, 200 images",
    "1 % broken, 1,500 images",
]


# -- calibration ----------------------------------------------------------------------------------
@pytest.mark.parametrize("family", NULL_FAMILIES)
def test_false_alarm_rate_on_null_pairs_is_alpha(family):
    """Pairs with no difference in mean: "significant" in at most ALPHA + 3 SE of them."""
    data = _null_family(family, np.random.default_rng(NULL_FAMILIES.index(family)))
    decisions = decide_columns(data, wilcoxon=False)
    assert len(decisions) >= 200
    rate = np.mean([d.significant for d in decisions])
    tolerance = 3 * math.sqrt(ALPHA * (1 - ALPHA) / len(decisions))
    assert rate <= ALPHA + tolerance, f"{family}: false alarms {rate:.3f}"
    assert rate >= ALPHA - tolerance, f"{family}: {rate:.3f}, far too conservative"


@pytest.mark.parametrize(
    ("shape", "delta"), [("normal", 0.3), ("skewed", -0.2), ("heavy tails", 0.1)]
)
def test_ci_covers_a_known_mean_difference_95_percent_of_the_time(shape, delta):
    rng = np.random.default_rng(42)
    noise = {
        "normal": lambda: rng.normal(0, 1, (150, NULLS)),
        "skewed": lambda: rng.exponential(1, (150, NULLS)) - 1,
        "heavy tails": lambda: rng.standard_t(3, (150, NULLS)),
    }[shape]()
    decisions = decide_columns(delta + noise, wilcoxon=False)
    coverage = np.mean([d.ci_low <= delta <= d.ci_high for d in decisions])
    assert abs(coverage - (1 - ALPHA)) <= RATE_TOLERANCE, f"coverage {coverage:.3f}"


def _cases() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    broken = rng.normal(0, 0.7, 1500)
    broken[:9] = -rng.uniform(8, 17, 9)
    return [
        ("normal, 60 images, n.s.", rng.normal(0.1, 1, 60)),
        ("normal, 200 images, borderline", rng.normal(0.135, 1, 200)),
        ("normal, 500 images", rng.normal(0.05, 1, 500)),
        ("skewed, 300 images", rng.exponential(1, 300) - 0.8),
        ("1,500 images, 9 broken", broken),
    ]


@pytest.mark.parametrize(("name", "d"), _cases(), ids=[c[0] for c in _cases()])
def test_ci_and_p_agree_with_scipy_up_to_resampling_noise(name, d):
    ours = decide(d)
    width = ours.ci_high - ours.ci_low
    boot = stats.bootstrap(
        (d,), np.mean, n_resamples=RESAMPLES, method="percentile", rng=np.random.default_rng(9)
    ).confidence_interval
    # two independent 10,000-resample estimates of the same percentiles: ~1 % of the width
    assert abs(ours.ci_low - boot.low) <= 0.05 * width
    assert abs(ours.ci_high - boot.high) <= 0.05 * width
    sign_flip = stats.permutation_test(
        (d,), np.mean, permutation_type="samples", n_resamples=RESAMPLES,
        rng=np.random.default_rng(9),
    ).pvalue  # fmt: skip
    assert abs(ours.p - sign_flip) <= 0.01 + 0.15 * sign_flip, (ours.p, sign_flip)


# -- the cases the rule exists for -------------------------------------------------------------
def test_a_few_broken_images_are_a_significant_loss_that_wilcoxon_misses():
    """The issue's regression: faint noise both ways plus 9 of 1,500 images broken by > 5 dB
    moves the mean by about -0.07 dB: "worse", while the median test sees nothing."""
    rng = np.random.default_rng(22)
    d = rng.normal(0, 0.7, 1500)
    d[rng.choice(1500, 9, replace=False)] = -rng.uniform(8, 17, 9)
    decision = decide(d, tolerance=0.05, broken_at=5.0)
    assert decision.verdict == WORSE and decision.significant and decision.ci_high < 0
    assert decision.difference < -0.05 and decision.p < ALPHA
    assert decision.n_broken == 9
    assert decision.wilcoxon_p > ALPHA  # the old rule: "worse, n.s."


def test_a_shifted_median_with_a_shifted_mean_is_detected_both_ways():
    rng = np.random.default_rng(5)
    d = rng.normal(0.25, 1.5, 400)
    assert decide(d).verdict == BETTER
    assert decide(-d).verdict == WORSE
    assert decide(d, higher_is_better=False).verdict == WORSE  # e.g. an error metric


def test_a_shifted_median_with_an_unchanged_mean_is_not_a_change_of_the_mean():
    """Most images a little better, a few much worse, mean 0: Wilcoxon calls it, the rule
    (on the mean the tables show) does not."""
    rng = np.random.default_rng(6)
    d = np.where(rng.random(2000) < 0.05, -4.0, rng.normal(0.2, 0.3, 2000))
    d -= d.mean()
    decision = decide(d, tolerance=0.05)
    assert decision.wilcoxon_p < 1e-6
    assert not decision.significant and decision.verdict in (NO_CHANGE, INCONCLUSIVE)


def test_no_change_needs_the_whole_interval_inside_the_tolerance():
    rng = np.random.default_rng(7)
    tight = decide(rng.normal(0, 0.2, 2000), tolerance=0.05)
    assert tight.verdict == NO_CHANGE and -0.05 <= tight.ci_low <= tight.ci_high <= 0.05
    assert tight.images_needed is None
    wide = decide(rng.normal(0, 1, 100), tolerance=0.05)
    assert wide.verdict == INCONCLUSIVE and wide.images_needed > 100
    # one bound inside the tolerance is not enough
    one_side = decide(np.random.default_rng(0).normal(0.03, 0.5, 400), tolerance=0.05)
    assert -0.05 < one_side.ci_low < 0 and one_side.ci_high > 0.05
    assert one_side.verdict == INCONCLUSIVE
    assert decide(np.zeros(50), tolerance=0.0).verdict == NO_CHANGE  # identical: [0, 0]


def test_images_needed_is_a_usable_first_order_estimate():
    rng = np.random.default_rng(8)
    first = decide(rng.normal(0, 1, 100), tolerance=0.1)
    assert first.verdict == INCONCLUSIVE
    more = decide(rng.normal(0, 1, first.images_needed), tolerance=0.1)
    assert more.verdict != INCONCLUSIVE or (more.ci_high - more.ci_low) / 2 < 0.15
    assert images_needed(1000, 0.0, -0.1, 0.1, 0.05) == 4000  # n (h / tolerance)^2
    assert images_needed(1000, 0.05, -0.05, 0.15, 0.0) == 4000  # n (h / |mean|)^2
    assert images_needed(1000, 0.0, -0.1, 0.1, 0.0) is None
    assert images_needed(1, 0.0, -math.inf, math.inf, 0.05) is None


# -- construction -------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.1])
def test_p_below_alpha_exactly_when_the_interval_excludes_zero(alpha):
    rng = np.random.default_rng(int(alpha * 100))
    for n in (2, 3, 4, 5, 8, 13, 30, 100):
        data = rng.normal(0, 1, (n, 60)) + np.linspace(0, 3, 60) / math.sqrt(n)
        for d in decide_columns(data, alpha=alpha, wilcoxon=False):
            excludes = d.ci_low > 0 or d.ci_high < 0
            assert d.significant == excludes == (d.p < alpha), (n, d)
            assert (d.verdict in (BETTER, WORSE)) == d.significant


@pytest.mark.parametrize("n", [4, 20, 3576])
def test_the_interval_and_p_switch_at_the_same_count_of_far_resamples(n):
    """Every count of resample means on the far side of 0 around the switch: the interval's
    bound crosses 0 at exactly the count where p crosses alpha (no off-by-one)."""
    from benchmark.decision import _bounds, _far, _levels

    p_of_count, k = _levels(n, RESAMPLES, ALPHA)
    rng = np.random.default_rng(n)
    for far in range(max(0, k - 3), k + 4):
        sums = np.where(np.arange(RESAMPLES) < far, -1.0, 1.0)
        sums[:far] -= rng.random(far)  # distinct values, the far ones at or below 0
        if far:
            sums[far - 1] = 0.0  # a resample mean of exactly 0 counts as far
        column = rng.permutation(sums)[:, None]
        counted = int(_far(column)[0])
        low, high = _bounds(column, k)[:, 0]
        assert counted == far and low <= high
        assert (low > 0) == (p_of_count[counted] < ALPHA) == (far <= k), (far, k, low)
        mirror_low, mirror_high = _bounds(-column, k)[:, 0]  # the mirror image switches alike
        assert (mirror_high, mirror_low) == (-low, -high) and int(_far(-column)[0]) == far


def test_too_few_images_never_decide():
    for d in (np.array([1.0]), np.array([1.0, 1.1]), np.array([1.0, 1.1, 0.9])):
        decision = decide(d, tolerance=0.05)
        assert (decision.ci_low, decision.ci_high) == (-math.inf, math.inf)
        assert not decision.significant and decision.verdict == INCONCLUSIVE
    assert decide(np.array([1.0, 1.1, 0.9, 1.05])).ci_low > -math.inf  # 4 images: bounded
    empty = decide(np.array([]))
    assert empty.n == 0 and math.isnan(empty.difference) and not empty.significant


def test_decisions_are_deterministic_and_bit_exact_on_the_grid():
    rng = np.random.default_rng(10)
    values = rng.normal(35, 3, (500, 3))
    values[:, 2] = values[:, 0]  # an identical method
    values[::7, 2] += 0.25  # ... that differs on a seventh of the images
    q, unit = to_grid(values)
    assert np.array_equal(q * unit, np.round(values / unit) * unit)
    assert np.max(np.abs(q * unit - values)) <= unit / 2
    sums = resample_sums(q)
    kept = ResampleCounts()
    exact = np.concatenate(  # integer arithmetic, no rounding anywhere
        [block.astype(np.int64) @ q.astype(np.int64) for _, block in kept.blocks(500, RESAMPLES, 0)]
    )
    assert np.array_equal(sums, exact.astype(np.float64)) and np.all(np.abs(exact) < 2**53)
    assert np.array_equal(resample_sums(q, counts=kept), sums)
    assert np.array_equal(resample_sums(q, counts=kept), sums)  # from the kept counts
    first = decide_pairs(values, [(0, 1), (1, 0), (0, 2), (0, 0)])
    assert first == decide_pairs(values, [(0, 1), (1, 0), (0, 2), (0, 0)])
    ab, ba, changed, same = first
    assert (ba.ci_low, ba.ci_high, ba.p) == (-ab.ci_high, -ab.ci_low, ab.p)
    assert (same.ci_low, same.ci_high, same.p, same.verdict) == (0.0, 0.0, 1.0, NO_CHANGE)
    # a change on some images only: resample means on the grid are exact multiples
    assert changed.ci_high <= 0 and changed.significant and changed.verdict == WORSE


# -- Holm -----------------------------------------------------------------------------------------
def _holm_by_definition(p: list[float], alpha: float) -> list[bool]:
    order = sorted(range(len(p)), key=lambda i: p[i])
    rejected = [False] * len(p)
    for rank, i in enumerate(order):
        if p[i] >= alpha / (len(p) - rank):
            break
        rejected[i] = True
    return rejected


def test_holm_equals_its_step_down_definition():
    rng = np.random.default_rng(11)
    for m in (1, 2, 5, 40):
        for _ in range(50):
            p = (rng.random(m) ** 3).tolist()
            assert holm(p, 0.05) == _holm_by_definition(p, 0.05)
            adjusted = holm_adjusted(p)
            assert all(min(1.0, v) >= q for v, q in zip(adjusted, p))
    assert holm([0.01, 0.04, 0.03]) == [True, False, False]
    assert holm([0.01, 0.02, 0.03]) == [True, True, True]
    assert holm([]) == [] and holm([float("nan"), 0.001]) == [False, True]


def test_holm_keeps_the_family_wise_false_alarms_at_alpha():
    """200 gates of 10 unchanged entries each: at most ALPHA + 3 SE of them raise any alarm,
    where deciding each entry alone raises one in about 40 %."""
    rng = np.random.default_rng(12)
    families, entries = 200, 10
    decisions = decide_columns(rng.normal(0, 1, (60, families * entries)), wilcoxon=False)
    p = np.array([d.p for d in decisions]).reshape(families, entries)
    any_alarm = np.mean([any(holm(list(row))) for row in p])
    alone = np.mean((p < ALPHA).any(axis=1))
    assert any_alarm <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / families)
    assert alone > 0.25


def test_holm_levels_reject_exactly_what_holm_rejects():
    rng = np.random.default_rng(14)
    for m in (1, 3, 10, 44):
        for _ in range(50):
            p = (rng.random(m) ** 4).tolist()
            levels = holm_levels(p, 0.05)
            assert [q < a for q, a in zip(p, levels)] == holm(p, 0.05)
            assert all(0.05 / m <= a <= 0.05 for a in levels)


def test_a_family_decides_with_holm_and_prints_intervals_that_agree():
    """Ten comparisons, two of them real drops of different sizes, one of different length:
    significant == interval excludes 0 == adjusted p below alpha == Holm's rejection."""
    rng = np.random.default_rng(15)
    columns = [rng.normal(0, 1, 300) for _ in range(8)]
    columns += [rng.normal(-0.4, 1, 300), rng.normal(-0.15, 1, 500)]
    family = decide_family(columns, tolerance=0.05, broken_at=2.5)
    raw = [d.p for d in family]
    assert [d.significant for d in family] == holm(raw)
    assert [d.p_adjusted for d in family] == holm_adjusted(raw)
    assert [d.alpha for d in family] == holm_levels(raw)
    for d, column in zip(family, columns):
        assert d.significant == (d.ci_low > 0 or d.ci_high < 0) == (d.p_adjusted < ALPHA)
        assert d.n_broken == int(np.sum(column < -2.5)) and d.n == len(column)
        alone = decide(column, wilcoxon=False)  # the same resamples, at the family's level
        assert d.p == alone.p and d.ci_low <= alone.ci_low and d.ci_high >= alone.ci_high
    assert family[8].significant and family[8].verdict == WORSE
    assert sum(d.significant for d in family) >= 1


# -- the contract: every printed decision agrees with the interval beside it -----------------
CI = re.compile(r"95 % CI ([+-][\d.]+) to ([+-][\d.]+)")


@functools.cache
def _board(seed: int) -> dict:
    """Methods around the detection threshold, shaped so that the mean and the median disagree:
    ``broken`` loses ~9 dB on 3 % of the images (the mean drops, the median does not),
    ``median`` gains 0.3 dB on most images but loses 6 dB on 6 % (the median rises, the mean
    barely moves), ``near`` is 0.12 dB lower everywhere, ``far`` 0.6 dB; ``lead`` gains
    0.06 dB per seed."""
    rng = np.random.default_rng(seed)
    n = 400
    base = rng.normal(38, 3, n)
    psnr = {name: base + rng.normal(0, 0.8, n) for name in METHODS}
    psnr["broken"][rng.random(n) < 0.03] -= 9.0
    psnr["median"] += np.where(rng.random(n) < 0.06, -6.0, 0.3)
    psnr["lead"] += 0.06 * seed  # from a tie at the top (seed 0) to a clear lead
    psnr["near"] -= 0.12
    psnr["far"] -= 0.6
    records = [
        {"method": method, "mask": "lines", "index": i, "status": "ok", "seconds": 0.01,
         "psnr": float(p), "ssim": float(p) / 50, "hole_psnr": float(p) - 10,
         "hole_l1": 1 / float(p), "mask_ratio": 0.1}
        for method, values in psnr.items()
        for i, p in enumerate(values)
    ]  # fmt: skip
    return build_leaderboard(records, list(METHODS), ["lines"], {"seed": seed})


METHODS = ("lead", "broken", "median", "near", "far")


def _excludes_zero(low: float, high: float) -> bool:
    return low > 0 or high < 0


@pytest.mark.parametrize("seed", range(6))
def test_every_printed_decision_agrees_with_its_interval(seed):
    board = _board(seed)
    table = board["tables"][0]
    # leaderboard.json: every comparison, both orders
    for row in table["comparisons"]:
        for metric in ("psnr", "ssim"):
            d = row[metric]
            assert d["significant"] == _excludes_zero(d["ci_low"], d["ci_high"])
            assert d["significant"] == (d["p_value"] < ALPHA)
            assert (d["verdict"] in (BETTER, WORSE)) == d["significant"]
    # the marks: ≈ exactly beside the methods whose CI against the leader includes 0
    tied = set()
    for entry in table["entries"][1:]:
        vs = entry["vs_leader"]["psnr"]
        assert entry["tied_with_leader"] == (not _excludes_zero(vs["ci_low"], vs["ci_high"]))
        if entry["tied_with_leader"]:
            tied.add(entry["method"])
    for text in (render_console(board), render_markdown(board)):
        marked = {m for m in METHODS if f"{m} {TIED_MARK}" in text}
        assert marked == tied
    # the verdict line: "leads" beside a printed CI that excludes 0, tie or inconclusive beside
    # one that includes it
    line = verdict_line(table)
    low, high = (float(v) for v in CI.search(line).groups())
    if " leads " in line:
        assert TIED_MARK not in line and _excludes_zero(low, high)
    else:
        assert re.search(rf"{TIED_MARK} (tie|inconclusive) between", line)
        assert low <= 0 <= high


def test_the_contract_cases_cover_both_outcomes_and_both_disagreements():
    """The seeds above hold leads and ties in the marks and in the verdict, and marks where
    Wilcoxon's test would have said the opposite, both ways."""
    boards = [_board(seed)["tables"][0] for seed in range(6)]
    verdicts = {t["verdict"]["tied"] for t in boards}
    vs = [e["vs_leader"]["psnr"] for t in boards for e in t["entries"][1:]]
    marks = {not d["significant"] for d in vs}
    assert verdicts == {True, False} and marks == {True, False}
    assert any(d["significant"] and d["wilcoxon_p"] >= ALPHA for d in vs)
    assert any(not d["significant"] and d["wilcoxon_p"] < ALPHA for d in vs)


def test_a_lead_whose_interval_rounds_to_zero_prints_its_sign():
    """A significant lead whose lower bound is below 0.005 dB still prints a positive bound."""
    rng = np.random.default_rng(13)
    base = rng.normal(38, 3, 4000)
    records = []
    for method, extra in (("a", 0.008 + rng.normal(0, 0.15, 4000)), ("b", 0.0)):
        for i, p in enumerate(base + extra):
            records.append(
                {"method": method, "mask": "lines", "index": i, "status": "ok", "seconds": 0.01,
                 "psnr": float(p), "ssim": 0.9, "hole_psnr": 20.0, "hole_l1": 0.1,
                 "mask_ratio": 0.1}
            )  # fmt: skip
    table = build_leaderboard(records, ["a", "b"], ["lines"], {})["tables"][0]
    line = verdict_line(table)
    low, _ = (float(v) for v in CI.search(line).groups())
    assert " leads " in line and low > 0 and "+0.00 " not in line

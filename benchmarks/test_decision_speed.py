"""The cost of the decision rule in the 11-method CI leaderboard (issue 22).

* ``leaderboard_decisions``: ``build_leaderboard`` as it is: every pair and each method against
  the leader decided on 10,000 shared bootstrap resamples (benchmark.decision), Wilcoxon as a
  secondary column.
* ``leaderboard_old_rule``: the same call with the comparisons made as before the rule: 1,000
  resamples (the tables' own), each method's resample means shared between pairs, Wilcoxon
  deciding. The entries' means and CIs, the ranking and the buckets are the same code in both.

Both build the leaderboard of the CI configuration's shape (``results/ci.toml``): 11 methods x
2 masks x 3,576 images, from synthetic records (seeded). The summary shows new / old; the
issue's budget is 2x the old leaderboard (0.83 s on the 2-core development machine).
"""

from __future__ import annotations

import numpy as np
import pytest

import benchmark.leaderboard as leaderboard
from benchmark.decision import wilcoxon_p
from benchmark.leaderboard import build_leaderboard
from benchmark.metrics import all_metrics
from benchmark.stats import Resamples, bootstrap_means, from_bootstrap

#: this file's medians (the conftest's ratios are the lead's list)
SECONDS: dict[str, float] = {}
METHODS = [f"method-{k}" for k in range(11)]
MASKS = ["lines", "square"]
IMAGES = 3576


@pytest.fixture(scope="module")
def ci_records() -> list[dict]:
    """Records shaped like the CI run: per-image values of 11 methods that differ by 0 to
    2 dB around a shared per-image difficulty, with per-image noise."""
    rng = np.random.default_rng(0)
    names = [m.name for m in all_metrics()]
    records = []
    for mask in MASKS:
        difficulty = rng.normal(38, 4, IMAGES)
        for k, method in enumerate(METHODS):
            psnr = difficulty - 0.2 * k + rng.normal(0, 1.0, IMAGES)
            other = rng.random((len(names), IMAGES))
            for i in range(IMAGES):
                record = {"method": method, "mask": mask, "index": i, "status": "ok",
                          "seconds": 0.001, "fingerprint": "f"}  # fmt: skip
                record.update({name: float(other[j, i]) for j, name in enumerate(names)})
                record["psnr"], record["ssim"] = float(psnr[i]), float(psnr[i]) / 45
                records.append(record)
    return records


def _old_comparisons(series, ranked, counts=None):
    """The comparisons before the decision rule: 1,000 resamples, Wilcoxon decides."""
    resamples = Resamples()
    n = len(series[ranked[0]]["index"])
    indices = resamples(n)
    means = {
        (m, metric): bootstrap_means(series[m][metric], indices)
        for m in ranked
        for metric in ("psnr", "ssim")
    }

    def compare(a, b):
        row = {"a": a, "b": b, "n": n}
        for metric in ("psnr", "ssim"):
            d = np.asarray(series[a][metric]) - np.asarray(series[b][metric])
            summary = from_bootstrap(float(d.mean()), means[a, metric] - means[b, metric], n)
            p = wilcoxon_p(d)
            row[metric] = {**summary.__dict__, "p_value": p, "significant": p < 0.05,
                           "verdict": "better" if p < 0.05 else "no change"}  # fmt: skip
        return row

    pairs = [compare(a, b) for i, a in enumerate(ranked) for b in ranked[i + 1 :]]
    against = {m: compare(m, ranked[0]) for m in ranked[1:]}
    return pairs, against


def test_leaderboard_with_the_decision_rule(benchmark, ci_records, remember):
    board = benchmark.pedantic(
        build_leaderboard, args=(ci_records, METHODS, MASKS, {}), rounds=5, warmup_rounds=1
    )
    assert board["tables"][0]["comparisons"][0]["psnr"]["resamples"] == 10_000
    remember(benchmark, "leaderboard_decisions")
    SECONDS["new"] = benchmark.stats.stats.median


def test_leaderboard_with_the_old_rule(benchmark, ci_records, remember, monkeypatch, figure):
    monkeypatch.setattr(leaderboard, "_comparisons", _old_comparisons)
    board = benchmark.pedantic(
        build_leaderboard, args=(ci_records, METHODS, MASKS, {}), rounds=5, warmup_rounds=1
    )
    assert "resamples" not in board["tables"][0]["comparisons"][0]["psnr"]
    remember(benchmark, "leaderboard_old_rule")
    if "new" in SECONDS:  # the summary at the end of the session shows the ratio
        ratio = SECONDS["new"] / benchmark.stats.stats.median
        figure("11-method CI leaderboard, decision rule / old rule (same session)", ratio)

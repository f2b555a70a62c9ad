"""Paired statistics between methods, mask-ratio buckets, and their place in the leaderboard."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from benchmark.decision import BROKEN_AT, TOLERANCES, decide
from benchmark.leaderboard import LEADERBOARD_FORMAT, build_leaderboard
from benchmark.marks import TIED_MARK, TIED_NOTE
from benchmark.records import finite
from benchmark.significance import (
    BUCKET_EDGES,
    bucket_of,
    common_values,
    compare_pairs,
    pairwise_comparisons,
    ratio_buckets,
    wilcoxon_p,
)
from benchmark.stats import summarize
from benchmark.tables import render_console, render_markdown


# -- Wilcoxon and bootstrap against scipy ----------------------------------------------------------
@pytest.mark.parametrize("n", [8, 30, 60, 500])
def test_wilcoxon_p_equals_scipy(n):
    rng = np.random.default_rng(n)
    d = rng.normal(0.2, 1.0, n)
    assert wilcoxon_p(d) == pytest.approx(stats.wilcoxon(d).pvalue, rel=1e-12)


def test_wilcoxon_with_zero_differences_drops_them():
    d = np.array([0.0, 0.0, 0.5, -0.1, 1.2, 0.7, 0.0, 2.0, -0.3, 0.9, 1.1, 0.4])
    expected = stats.wilcoxon(d, zero_method="wilcox").pvalue
    assert wilcoxon_p(d) == pytest.approx(expected)
    assert wilcoxon_p(d) == pytest.approx(stats.wilcoxon(d[d != 0]).pvalue)


def test_wilcoxon_degenerate_cases():
    assert wilcoxon_p(np.zeros(100)) == 1.0  # identical methods: no evidence of a difference
    assert math.isnan(wilcoxon_p(np.array([])))
    assert wilcoxon_p(np.full(40, 0.5)) < 1e-6  # every image better by the same amount


def test_pairing_finds_what_the_entries_intervals_cannot():
    rng = np.random.default_rng(7)
    a = rng.normal(40, 4, 400)
    b = a - 0.3 + rng.normal(0, 0.5, 400)
    series = {"a": {"index": np.arange(400), "psnr": a}, "b": {"index": np.arange(400), "psnr": b}}
    (row,) = compare_pairs(series, [("a", "b")], metrics=["psnr"])
    d = row["psnr"]
    assert d["n"] == 400 and d["mean"] == pytest.approx(np.mean(a - b))
    assert d["ci_low"] < 0.3 < d["ci_high"] or abs(d["mean"] - 0.3) < 0.1
    assert d["significant"] and d["verdict"] == "better"
    assert d["wilcoxon_p"] == pytest.approx(stats.wilcoxon(a - b).pvalue)
    # the pairing matters: the unpaired CIs of a and b overlap, the paired one excludes 0
    assert summarize(a).ci_low < summarize(b).ci_high and d["ci_low"] > 0


def test_pairs_use_the_images_both_measured():
    a = {"index": np.array([0, 1, 2, 5]), "psnr": np.array([30.0, 31.0, 32.0, 35.0])}
    b = {"index": np.array([1, 2, 3, 5]), "psnr": np.array([30.0, 30.0, 99.0, 34.0])}
    c = {"index": np.array([1, 2, 5]), "psnr": np.array([30.0, 30.0, 34.0])}
    (row,) = compare_pairs({"a": a, "b": b}, [("a", "b")], metrics=["psnr"])
    assert row["n"] == 3 and row["psnr"]["mean"] == pytest.approx((1 + 2 + 1) / 3)
    (same,) = compare_pairs({"a": a, "c": c}, [("a", "c")], metrics=["psnr"])
    assert same["psnr"] == row["psnr"]  # c holds exactly b's values on those images


def test_pairwise_comparisons_cover_every_pair_in_order():
    rng = np.random.default_rng(3)
    idx = np.arange(50)
    series = {
        m: {"index": idx, "psnr": rng.normal(mu, 1, 50), "ssim": rng.random(50)}
        for m, mu in (("a", 40), ("b", 35), ("c", 30), ("d", 25))
    }
    rows = pairwise_comparisons(series, ["a", "b", "c", "d"])
    assert [(r["a"], r["b"]) for r in rows] == [
        ("a", "b"),
        ("a", "c"),
        ("a", "d"),
        ("b", "c"),
        ("b", "d"),
        ("c", "d"),
    ]
    first = rows[0]
    assert first["n"] == 50 and first["psnr"]["mean"] > 0 and first["psnr"]["p_value"] < 0.05
    assert first["psnr"]["significant"] and first["psnr"]["verdict"] == "better"
    diff = series["a"]["ssim"] - series["b"]["ssim"]
    # Wilcoxon stays as the secondary column
    assert first["ssim"]["wilcoxon_p"] == pytest.approx(stats.wilcoxon(diff).pvalue)


@pytest.mark.parametrize("shared_images", [True, False])
def test_pairwise_comparisons_equal_each_pair_decided_alone(shared_images):
    """With every method on the same images one resampling serves every pair and metric; the
    decisions must be those of each pair's differences decided on their own."""
    rng = np.random.default_rng(8)
    series = {}
    for k, name in enumerate("abcde"):
        index = np.arange(300) if shared_images else np.sort(rng.choice(320, 300, replace=False))
        psnr = rng.normal(35 - 0.1 * k, 2, 300)
        series[name] = {"index": index, "psnr": psnr, "ssim": rng.random(300)}
    rows = pairwise_comparisons(series, list("abcde"))
    assert len(rows) == 10
    verdicts = set()
    for row in rows:
        for metric in ("psnr", "ssim"):
            a, b = common_values(series[row["a"]], series[row["b"]], metric)
            alone = decide(
                a - b, tolerance=TOLERANCES[metric], broken_at=BROKEN_AT[metric]
            ).as_dict()
            got = row[metric]
            assert got["n"] == alone["n"] == row["n"]
            assert got["mean"] == pytest.approx(alone["mean"], abs=1e-12)
            for bound in ("ci_low", "ci_high"):  # the values' grid differs by < 1e-9
                assert got[bound] == pytest.approx(alone[bound], abs=1e-9)
            for key in ("p_value", "significant", "verdict", "n_broken", "wilcoxon_p"):
                assert got[key] == alone[key]
            verdicts.add(got["verdict"])
    assert len(verdicts) >= 2  # the case is not trivially one-sided


def test_pairs_in_both_orders_mirror_each_other_exactly():
    rng = np.random.default_rng(12)
    base = rng.normal(35, 3, 500)
    series = {
        m: {"index": np.arange(500), "psnr": base + shift + rng.normal(0, 1, 500),
            "ssim": rng.random(500)}
        for m, shift in (("a", 0.0), ("b", 0.1), ("c", 2.0))
    }  # fmt: skip
    rows = compare_pairs(series, [("a", "b"), ("b", "a"), ("a", "c"), ("c", "a")])
    for ab, ba in ((rows[0], rows[1]), (rows[2], rows[3])):
        d, m = ab["psnr"], ba["psnr"]
        assert (m["mean"], m["ci_low"], m["ci_high"]) == (-d["mean"], -d["ci_high"], -d["ci_low"])
        assert m["p_value"] == d["p_value"] and m["significant"] == d["significant"]
    assert (rows[2]["psnr"]["verdict"], rows[3]["psnr"]["verdict"]) == ("worse", "better")


def test_pairwise_comparisons_on_one_or_no_image():
    one = {
        m: {"index": np.array([4]), "psnr": np.array([v]), "ssim": np.array([0.5])}
        for m, v in (("a", 30.0), ("b", 29.0), ("c", 28.0))
    }
    rows = pairwise_comparisons(one, ["a", "b", "c"])
    first = rows[0]["psnr"]
    # one image: a difference, but nothing bounds its mean, so nothing is decided
    assert (first["n"], first["mean"]) == (1, 1.0)
    assert (first["ci_low"], first["ci_high"]) == (-math.inf, math.inf)
    assert not first["significant"] and first["verdict"] == "inconclusive"
    assert first["images_needed"] is None
    empty = {
        m: {"index": np.array([], dtype=int), "psnr": np.array([]), "ssim": np.array([])}
        for m in "abc"
    }
    rows = pairwise_comparisons(empty, ["a", "b", "c"])
    assert all(r["n"] == 0 and not r["psnr"]["significant"] for r in rows)


# -- buckets ---------------------------------------------------------------------------------------
def test_bucket_edges_are_the_nvidia_bins_closed_on_the_right():
    assert BUCKET_EDGES == (0.0, 0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.0)
    ratios = np.array([0.0, 0.005, 0.01, 0.0100001, 0.0999, 0.1, 0.2, 0.3, 0.6, 0.7, 0.95, 1.0])
    assert bucket_of(ratios).tolist() == [0, 0, 0, 1, 1, 1, 2, 3, 6, 7, 7, 7]
    # a ratio stored from float32 on an exact edge stays in the bin of its pixel fraction
    on_edges = np.array([0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6], dtype=np.float32).astype(float)
    assert bucket_of(on_edges).tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert bucket_of(on_edges + 1e-6).tolist() == [1, 2, 3, 4, 5, 6, 7]


def test_bucket_counts_sum_to_n_and_means_match():
    rng = np.random.default_rng(11)
    n = 1000
    ratio = rng.beta(2, 8, n)
    series = {
        "m1": {"index": np.arange(n), "mask_ratio": ratio, "psnr": 50 - 40 * ratio},
        # a method that failed on some images: its own count
        "m2": {"index": np.arange(0, n, 2), "mask_ratio": ratio[::2], "psnr": 45 - 40 * ratio[::2]},
    }
    rows = ratio_buckets(series, ["psnr"])
    assert sum(r["methods"]["m1"]["n"] for r in rows) == n
    assert sum(r["methods"]["m2"]["n"] for r in rows) == n // 2
    assert [r["label"] for r in rows] == [
        "0–1 %", "1–10 %", "10–20 %", "20–30 %", "30–40 %", "40–50 %", "50–60 %", "60–100 %"
    ]  # fmt: skip
    assert rows[1]["low"] == 0.01 and rows[1]["high"] == 0.1
    for k, r in enumerate(rows):
        inside = (ratio > r["low"]) & (ratio <= r["high"]) | ((ratio == 0) & (k == 0))
        if inside.any():
            assert r["methods"]["m1"]["psnr"] == pytest.approx(np.mean(50 - 40 * ratio[inside]))
        else:
            assert r["methods"]["m1"]["psnr"] is None
    assert [r["low"] for r in rows] == list(BUCKET_EDGES[:-1])


def test_buckets_of_nothing():
    assert ratio_buckets({}) == []
    empty = {"index": np.array([], int), "mask_ratio": np.array([]), "psnr": np.array([])}
    assert ratio_buckets({"m": empty}, ["psnr"]) == []


# -- leaderboard integration -----------------------------------------------------------------------
def _records(values: dict[str, np.ndarray], mask: str = "lines") -> list[dict]:
    records = []
    for method, psnr in values.items():
        for i, p in enumerate(psnr):
            records.append(
                {
                    "method": method,
                    "mask": mask,
                    "index": i,
                    "status": "ok",
                    "seconds": 0.001,
                    "psnr": float(p),
                    "ssim": float(p) / 50,
                    "hole_psnr": float(p) - 10,
                    "hole_l1": 1 / float(p),
                    "mask_ratio": 0.02 + (i % 30) / 100,
                }
            )
    return records


def _board():
    rng = np.random.default_rng(5)
    base = rng.normal(40, 3, 200)
    values = {
        "leader": base + 0.5,
        "twin": base + 0.5 + rng.normal(0, 0.3, 200),  # the leader plus symmetric noise
        "worse": base - 2 + rng.normal(0, 0.5, 200),
    }
    records = _records(values) + [
        {"method": "dead", "mask": "lines", "index": 0, "status": "failed: boom", "seconds": 0.1}
    ]
    return build_leaderboard(records, ["worse", "twin", "leader", "dead"], ["lines"], {"seed": 0})


def test_leaderboard_marks_methods_tied_with_the_leader():
    board = _board()
    assert board["format"] == LEADERBOARD_FORMAT == 4
    table = board["tables"][0]
    entries = {e["method"]: e for e in table["entries"]}
    leader = table["entries"][0]["method"]
    assert leader in ("leader", "twin")
    other = "twin" if leader == "leader" else "leader"
    assert entries[leader]["tied_with_leader"] is None and entries[leader]["vs_leader"] is None
    assert entries[other]["tied_with_leader"] is True
    assert entries[other]["vs_leader"]["psnr"]["p_value"] >= 0.05
    assert entries["worse"]["tied_with_leader"] is False
    worse = entries["worse"]["vs_leader"]["psnr"]
    assert worse["mean"] < -2 and worse["ci_low"] < worse["mean"] < worse["ci_high"] < 0
    assert entries["dead"]["tied_with_leader"] is None  # nothing measured
    for text in (render_markdown(board), render_console(board)):
        assert f"{other} {TIED_MARK}" in text
        assert f"worse {TIED_MARK}" not in text
        assert TIED_NOTE in text


def test_leaderboard_holds_comparisons_and_buckets():
    table = _board()["tables"][0]
    pairs = {(c["a"], c["b"]) for c in table["comparisons"]}
    assert len(pairs) == 3  # the dead method (no images) is not compared
    assert all("dead" not in p for p in pairs)
    for c in table["comparisons"]:
        assert set(c) >= {"a", "b", "n", "psnr", "ssim"} and c["n"] == 200
    counts = {m: sum(b["methods"][m]["n"] for b in table["buckets"]) for m in ("leader", "dead")}
    assert counts == {"leader": 200, "dead": 0}
    assert "Mean PSNR (dB) by mask ratio" in render_markdown(_board())


def test_new_fields_survive_json():
    board = _board()
    loaded = json.loads(json.dumps(finite(board)))
    assert render_markdown(loaded) == render_markdown(board)
    assert render_console(loaded) == render_console(board)

"""Bootstrap summaries and leaderboards built from per-image records."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmark.leaderboard import build_leaderboard
from benchmark.records import finite
from benchmark.stats import bootstrap_indices, summarize
from benchmark.tables import render_console, render_markdown


# -- summarize ------------------------------------------------------------------------------------
def test_summary_mean_and_ci_contain_the_mean():
    values = np.random.default_rng(0).normal(30, 3, 200)
    s = summarize(values)
    assert s.n == 200
    assert s.mean == pytest.approx(values.mean())
    assert s.ci_low < s.mean < s.ci_high
    # a 95 % CI of the mean is about 2 * 1.96 * sd / sqrt(n) wide
    expected = 2 * 1.96 * values.std() / math.sqrt(200)
    assert (s.ci_high - s.ci_low) == pytest.approx(expected, rel=0.2)
    assert s.half_width == pytest.approx((s.ci_high - s.ci_low) / 2)


def test_ci_width_shrinks_with_n():
    rng = np.random.default_rng(1)

    def standardized(n):  # same spread at every n, so only n changes the width
        x = rng.normal(0, 1, n)
        return (x - x.mean()) / x.std()

    widths = [summarize(standardized(n)).half_width for n in (20, 200, 2000)]
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] / widths[2] == pytest.approx(10, rel=0.2)  # 1 / sqrt(n)


def test_summary_is_reproducible():
    values = np.random.default_rng(2).random(50)
    assert summarize(values) == summarize(values.copy())
    assert np.array_equal(bootstrap_indices(50), bootstrap_indices(50))
    assert not np.array_equal(bootstrap_indices(50, seed=0), bootstrap_indices(50, seed=1))


def test_shared_indices_pair_the_metrics():
    idx = bootstrap_indices(30, resamples=500)
    assert idx.shape == (500, 30) and idx.min() >= 0 and idx.max() < 30
    values = np.random.default_rng(3).random(30)
    assert summarize(values, idx) == summarize(values, idx)
    shifted = summarize(values + 10, idx)
    base = summarize(values, idx)
    assert shifted.ci_low == pytest.approx(base.ci_low + 10)
    assert shifted.ci_high == pytest.approx(base.ci_high + 10)


def test_small_n_collapses():
    one = summarize(np.array([4.5]))
    assert (one.mean, one.ci_low, one.ci_high, one.n) == (4.5, 4.5, 4.5, 1)
    empty = summarize(np.array([]))
    assert empty.n == 0 and math.isnan(empty.mean)
    constant = summarize(np.full(10, 2.0))
    assert constant.ci_low == constant.ci_high == 2.0


# -- build_leaderboard ----------------------------------------------------------------------------
def record(method, mask, index, psnr=30.0, status="ok", seconds=0.01, **extra):
    r = {"method": method, "mask": mask, "index": index, "status": status, "seconds": seconds}
    if status == "ok":
        r.update(psnr=psnr, ssim=psnr / 40, hole_psnr=psnr - 10, hole_l1=1 / psnr, mask_ratio=0.2)
    r.update(extra)
    return r


def make_records():
    rng = np.random.default_rng(4)
    records = []
    for mask in ("lines", "square"):
        for i in range(40):
            records.append(record("good", mask, i, 35 + rng.normal()))
            records.append(record("fair", mask, i, 30 + rng.normal(), seconds=0.02))
            records.append(record("poor", mask, i, 25 + rng.normal()))
            records.append(record("dead", mask, i, status="failed: RuntimeError: boom"))
    return records


def entries_by_method(table):
    return {e["method"]: e for e in table["entries"]}


def test_ranks_by_psnr_descending_and_all_failed_last():
    board = build_leaderboard(
        make_records(), ["dead", "poor", "good", "fair"], ["lines", "square"], {}
    )
    for table in board["tables"]:
        assert [e["method"] for e in table["entries"]] == ["good", "fair", "poor", "dead"]
        assert [e["rank"] for e in table["entries"]] == [1, 2, 3, None]  # dead: unranked
        dead = entries_by_method(table)["dead"]
        assert dead["n"] == 0 and dead["failed"] == 40 and not dead["ranked"]
        assert dead["failure_reasons"] == ["failed: RuntimeError: boom"]
        assert dead["failures"] == [
            {"reason": "RuntimeError: boom", "count": 40, "status": "failed: RuntimeError: boom"}
        ]


def test_tables_follow_the_given_mask_order():
    records = make_records()
    assert [
        t["mask"] for t in build_leaderboard(records, ["good"], ["square", "lines"], {})["tables"]
    ] == ["square", "lines"]
    # a mask without records still gets its (empty) table
    board = build_leaderboard(records, ["good"], ["lines", "blocks"], {})
    assert [t["mask"] for t in board["tables"]] == ["lines", "blocks"]
    assert board["tables"][1]["entries"][0]["n"] == 0


def test_failed_rows_are_counted_and_excluded_from_means():
    rows = [record("m", "k", i, psnr=20.0 + i) for i in range(4)]
    rows += [record("m", "k", i, status="failed: prediction contains NaN") for i in range(4, 7)]
    entry = build_leaderboard(rows, ["m"], ["k"], {})["tables"][0]["entries"][0]
    assert entry["n"] == 4 and entry["failed"] == 3
    assert entry["metrics"]["psnr"]["mean"] == pytest.approx(21.5)
    assert entry["metrics"]["psnr"]["n"] == 4


def test_records_of_unlisted_methods_and_masks_are_ignored():
    records = make_records() + [record("good", "other", 0, psnr=99.0)]
    board = build_leaderboard(records, ["good", "poor"], ["lines"], {})
    assert len(board["tables"]) == 1
    assert {e["method"] for e in board["tables"][0]["entries"]} == {"good", "poor"}


def test_images_per_s_from_seconds_per_image():
    board = build_leaderboard(make_records(), ["good", "fair"], ["lines"], {})
    entries = entries_by_method(board["tables"][0])
    assert entries["good"]["images_per_s"] == pytest.approx(100.0)
    assert entries["fair"]["images_per_s"] == pytest.approx(50.0)
    no_time = [record("m", "k", 0, seconds=0.0)]
    assert (
        build_leaderboard(no_time, ["m"], ["k"], {})["tables"][0]["entries"][0]["images_per_s"]
        is None
    )


def test_metric_means_are_over_all_images_with_ci():
    records = make_records()
    board = build_leaderboard(records, ["good"], ["lines"], {})
    psnr = board["tables"][0]["entries"][0]["metrics"]["psnr"]
    values = [r["psnr"] for r in records if r["method"] == "good" and r["mask"] == "lines"]
    assert psnr["mean"] == pytest.approx(np.mean(values))
    assert psnr["ci_low"] < psnr["mean"] < psnr["ci_high"]
    assert psnr["n"] == 40


def test_tables_built_in_parallel_equal_each_table_built_alone():
    rng = np.random.default_rng(4)
    masks = ["lines", "square", "box", "strokes"]
    rows = [
        record(m, k, i, psnr=float(rng.normal(30 + j, 2)))
        for k in masks
        for j, m in enumerate(["a", "b", "c"])
        for i in range(60)
        if not (m == "c" and k == "box" and i % 7 == 0)  # one pair with failures
    ]
    together = build_leaderboard(rows, ["a", "b", "c"], masks, {})
    for mask, table in zip(masks, together["tables"]):
        alone = build_leaderboard(rows, ["a", "b", "c"], [mask], {})["tables"][0]
        assert table == alone


def test_building_tables_in_threads_leaves_the_warning_filters_as_they_were():
    """The Wilcoxon call silences scipy's warnings with catch_warnings, which swaps a global
    list: tables built in parallel must not leave a filter behind."""
    import warnings

    rng = np.random.default_rng(9)
    masks = [f"m{k}" for k in range(8)]
    rows = [
        record(m, k, i, psnr=float(rng.normal(30, 2)))
        for k in masks
        for m in "abcd"
        for i in range(40)
    ]
    before = list(warnings.filters)
    for _ in range(5):
        build_leaderboard(rows, list("abcd"), masks, {})
        assert warnings.filters == before


def test_leaderboard_does_not_depend_on_record_order():
    records = make_records()
    shuffled = [records[i] for i in np.random.default_rng(5).permutation(len(records))]
    a = build_leaderboard(records, ["good", "poor"], ["lines", "square"], {})
    b = build_leaderboard(shuffled, ["good", "poor"], ["lines", "square"], {})
    assert a == b


def test_leaderboard_survives_json_round_trip_and_renders():
    board = build_leaderboard(make_records(), ["good", "dead"], ["lines"], {"seed": 3})
    loaded = json.loads(json.dumps(finite(board)))  # NaN of the dead method -> null
    assert "—" in render_markdown(loaded)
    assert render_console(loaded) == render_console(board)


# -- rendering ------------------------------------------------------------------------------------
def test_render_markdown_and_console():
    config = {"dataset": "skimage-patches", "split": "test", "seed": 0}
    board = build_leaderboard(make_records(), ["poor", "good", "dead"], ["lines", "square"], config)
    markdown = render_markdown(board)
    console = render_console(board)
    for text in (markdown, console):
        for name in ("good", "poor", "dead", "lines", "square"):
            assert name in text
        assert "±" in text
        assert "PSNR" in text and "SSIM" in text
        # ranked order within each table
        for part in text.split("square")[1:2]:
            assert part.index("good") < part.index("poor") < part.index("dead")
    assert "## Mask `lines`" in markdown and "## Mask `square`" in markdown
    assert markdown.index("## Mask `lines`") < markdown.index("## Mask `square`")
    assert "skimage-patches" in markdown
    assert "mask: lines" in console and "mask: square" in console
    # the mean ± half-width shown is the JSON's
    good = entries_by_method(board["tables"][0])["good"]["metrics"]["psnr"]
    half = (good["ci_high"] - good["ci_low"]) / 2
    assert f"{good['mean']:.2f} ± {half:.2f}" in markdown


def test_format_2_leaderboards_still_render():
    from pathlib import Path

    old = json.loads((Path(__file__).parent.parent / "results" / "baseline.json").read_text())
    if old["format"] != 2:  # regenerated in the new format: build a format-2 table instead
        old = {"format": 2, "tables": [{"mask": "lines", "entries": [
            {"method": "a", "n": 3, "failed": 1, "failure_reasons": ["failed: boom"],
             "images_per_s": 10.0, "rank": 1, "metrics": {"psnr": {
                 "mean": 30.0, "ci_low": 29.0, "ci_high": 31.0, "n": 3}}},
        ]}]}  # fmt: skip
    text = render_console(old)
    assert "mask: lines" in text and "verdict" not in text
    assert "ranked on each method's own images (leaderboard format 2)" in text
    assert render_markdown(old).count("## Mask") == len(old["tables"])


def _record(method: str, index: int, psnr: float, hole_l1: float) -> dict:
    return {
        "method": method, "fingerprint": "", "mask": "lines", "index": index, "status": "ok",
        "seconds": 0.001, "psnr": psnr, "ssim": 0.9, "hole_psnr": psnr - 10,
        "hole_l1": hole_l1, "mask_ratio": 0.1,
    }  # fmt: skip


def test_an_oracle_is_flagged_and_marked():
    """Predictions equal to the ground truth in every hole (hole L1 exactly 0) rank first at
    100 dB: the entry is flagged oracle, marked ‡ and explained under the table."""
    records = [_record("answers", i, 100.0, 0.0) for i in range(6)]
    records += [_record("telea", i, 30.0 + i, 0.05) for i in range(6)]
    board = build_leaderboard(records, ["answers", "telea"], ["lines"], {"images": 6})
    entries = {e["method"]: e for e in board["tables"][0]["entries"]}
    assert entries["answers"].get("oracle") is True and "oracle" not in entries["telea"]
    text = render_console(board)
    assert "answers ‡" in text and "‡ oracle" in text
    almost = [_record("close", i, 60.0, 0.0 if i else 1e-6) for i in range(6)]
    board = build_leaderboard(almost, ["close"], ["lines"], {"images": 6})
    assert "oracle" not in board["tables"][0]["entries"][0]  # one hole off: not an oracle


def test_one_image_is_shown_without_an_interval():
    board = build_leaderboard([_record("telea", 0, 31.25, 0.05)], ["telea"], ["lines"], {})
    text = render_console(board)
    assert "31.25" in text and "31.25 ±" not in text and "± 0.00" not in text

"""A method never gains rank by failing: ranking on common images, failures beside the ranking."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmark.leaderboard import build_leaderboard, choose_ranked
from benchmark.marks import INCOMPLETE_MARK, MIN_COMMON_FRACTION
from benchmark.method import METHODS, Method
from benchmark.records import finite
from benchmark.run.config import RunConfig
from benchmark.run.runner import run_benchmark
from benchmark.tables import render_console, render_markdown, verdict_line


# -- the case through the real runner -------------------------------------------------
class SlightlyWorseTelea(Method):
    """telea, everything brightened by 0.003: a little worse than telea on every image."""

    device = "cpu"

    def __init__(self) -> None:
        self.telea = METHODS.build("telea")

    def inpaint(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (self.telea.inpaint(masked, mask) + 0.003).clamp(0, 1)


def nan_above(threshold: float, inner: str) -> type[Method]:
    """A method that fills like ``inner`` but returns NaN whenever the hole ratio > threshold."""

    class NanAbove(Method):
        device = "cpu"

        def __init__(self) -> None:
            self.inner = METHODS.build(inner)

        def inpaint(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            filled = self.inner.inpaint(masked, mask).clone()
            big = mask.flatten(1).float().mean(1) > threshold
            filled[big] = float("nan")
            return filled

    return NanAbove


def run(tmp_path, methods: list[str], limit: int = 200):
    config = RunConfig(
        methods=methods, masks=["lines"], limit=limit, workers=1, out=str(tmp_path / "run"),
        progress=False,
    )  # fmt: skip
    return run_benchmark(config).leaderboard["tables"][0]


@pytest.mark.slow
def test_nan_on_large_holes_does_not_outrank_telea(tmp_path, temp_method, single_torch_thread):
    temp_method("worse-telea", SlightlyWorseTelea)
    temp_method("nan-above-15", nan_above(0.15, "worse-telea"))  # completes < half the images
    temp_method("nan-above-20", nan_above(0.20, "worse-telea"))  # completes > half
    table = run(tmp_path, ["nan-above-15", "nan-above-20", "telea"])
    entries = {e["method"]: e for e in table["entries"]}
    telea = entries["telea"]
    for name in ("nan-above-15", "nan-above-20"):
        cheat = entries[name]
        # the trap: over its own (small-hole) images the failing method's mean is higher, so
        # means over each method's own images would rank it above telea ...
        assert cheat["own_metrics"]["psnr"]["mean"] > telea["own_metrics"]["psnr"]["mean"] + 1
        assert 0 < cheat["failed"] < 200 and telea["failed"] == 0
        assert not cheat["complete"] and cheat["failures"][0]["count"] == cheat["failed"]
        assert "NaN" in cheat["failures"][0]["reason"]
    # ... but telea leads, the 20 % one is ranked below it on the common images, and the 15 %
    # one (fewer than half the images) is listed unranked below both
    assert [e["method"] for e in table["entries"]] == ["telea", "nan-above-20", "nan-above-15"]
    assert [e["rank"] for e in table["entries"]] == [1, 2, None]
    assert telea["complete"] and telea["own_metrics"]["psnr"]["n"] == 200
    common = table["common"]["n"]
    assert common == entries["nan-above-20"]["n"] < 200
    assert (
        telea["metrics"]["psnr"]["n"] == entries["nan-above-20"]["metrics"]["psnr"]["n"] == common
    )
    assert entries["nan-above-20"]["tied_with_leader"] is False
    assert table["verdict"]["leader"] == "telea" and not table["verdict"]["tied"]
    text = render_console({"tables": [table]})
    for name in ("nan-above-15", "nan-above-20"):
        line = next(s for s in text.splitlines() if s.split()[1:2] == [name])
        assert INCOMPLETE_MARK in line and f"×{entries[name]['failed']}" in line
    assert INCOMPLETE_MARK not in next(s for s in text.splitlines() if " telea " in s)
    assert "verdict: telea leads nan-above-20" in text


def test_identical_method_that_fails_large_holes_ranks_after_the_complete_one(
    tmp_path, temp_method, single_torch_thread
):
    temp_method("telea-nan-above-25", nan_above(0.25, "telea"))
    table = run(tmp_path, ["telea-nan-above-25", "telea"], limit=100)
    entries = {e["method"]: e for e in table["entries"]}
    assert entries["telea-nan-above-25"]["failed"] > 0
    assert entries["telea-nan-above-25"]["ranked"]
    # same values on the common images: a tie, and the method that completed more comes first
    assert [e["method"] for e in table["entries"]] == ["telea", "telea-nan-above-25"]
    assert table["verdict"]["tied"] and table["verdict"]["psnr"]["mean"] == 0
    assert table["verdict"]["decision"] == "no change"
    assert table["verdict"]["psnr"]["ci_low"] == table["verdict"]["psnr"]["ci_high"] == 0
    assert entries["telea-nan-above-25"]["tied_with_leader"] is True


# -- the rule on synthetic records ------------------------------------------------------------
def records(method: str, psnr: np.ndarray, failed: set[int] = frozenset(), mask: str = "lines"):
    rows = []
    for i, p in enumerate(psnr):
        base = {"method": method, "mask": mask, "index": i, "seconds": 0.01, "mask_ratio": 0.05}
        if i in failed:
            rows.append({**base, "status": "failed: prediction contains NaN or infinite values"})
        else:
            metrics = dict(psnr=float(p), ssim=float(p) / 50, hole_psnr=float(p) - 10)
            rows.append({**base, "status": "ok", **metrics, "hole_l1": 0.1})
    return rows


N = 100
RNG = np.random.default_rng(0)
EASY = RNG.normal(40, 2, N)  # per-image difficulty shared by the methods


def test_choose_ranked_keeps_at_least_half_in_common():
    everything = set(range(10))
    completed = {"full": everything, "odd": set(range(1, 10, 2)), "low": set(range(4))}
    ranked, common = choose_ranked(completed, ["low", "odd", "full"], 10)
    assert ranked == ["full", "odd"] and common == set(range(1, 10, 2))  # low: 2 of 10 common
    assert choose_ranked({"a": set(), "b": set()}, ["a", "b"], 0) == ([], set())
    # most-complete first: the order given does not let a failing method shrink the others
    ranked, _ = choose_ranked({"a": {0, 1, 2}, "b": everything}, ["a", "b"], 10)
    assert ranked == ["b"]  # a alone covers 3 of 10 < half
    assert MIN_COMMON_FRACTION == 0.5


def test_method_that_completed_no_or_few_images_is_listed_unranked_below():
    rows = records("solid", EASY)
    rows += records("dead", EASY, failed=set(range(N)))
    rows += records("sparse", EASY + 5, failed=set(range(20, N)))  # better, but 20 images
    table = build_leaderboard(rows, ["dead", "sparse", "solid"], ["lines"], {})["tables"][0]
    assert [e["method"] for e in table["entries"]] == ["solid", "dead", "sparse"]
    assert [e["rank"] for e in table["entries"]] == [1, None, None]
    entries = {e["method"]: e for e in table["entries"]}
    assert entries["dead"]["unranked_reason"] == "completed no image"
    assert "completed 20 of 100 images" in entries["sparse"]["unranked_reason"]
    assert entries["sparse"]["metrics"]["psnr"]["n"] == 20  # its own images, shown as such
    text = render_console({"tables": [table]})
    assert "unranked (–)" in text and "sparse: completed 20 of 100" in text
    rank_column = [line.split()[0] for line in text.splitlines() if "sparse" in line][:1]
    assert rank_column == ["–"]
    assert "verdict: solid is the only ranked method" in text


def test_means_ties_and_verdict_are_on_the_common_images():
    # 'fragile' equals 'steady' + 0.01 dB where it works, fails the 40 hardest images
    hard = set(np.argsort(EASY)[:40].tolist())
    steady = EASY.copy()
    fragile = EASY + 0.01 + RNG.normal(0, 0.5, N)
    rows = records("steady", steady) + records("fragile", fragile, failed=hard)
    board = build_leaderboard(rows, ["steady", "fragile"], ["lines"], {})
    table = board["tables"][0]
    entries = {e["method"]: e for e in table["entries"]}
    assert table["common"] == {"n": 60, "methods": [e["method"] for e in table["entries"]]}
    keep = np.array(sorted(set(range(N)) - hard))
    assert entries["steady"]["metrics"]["psnr"]["mean"] == pytest.approx(steady[keep].mean())
    assert entries["steady"]["metrics"]["psnr"]["n"] == 60
    assert entries["steady"]["own_metrics"]["psnr"]["mean"] == pytest.approx(steady.mean())
    assert entries["steady"]["own_metrics"]["psnr"]["n"] == 100
    # over own images the fragile method looks ~1 dB better; on common images the difference
    # is not significant, and 60 images cannot tell a 0.01 dB change from 0.05: inconclusive
    assert entries["fragile"]["own_metrics"]["psnr"]["mean"] > steady.mean() + 0.5
    tied = [e for e in table["entries"] if e["tied_with_leader"] is not None]
    assert len(tied) == 1 and tied[0]["tied_with_leader"] is True
    assert tied[0]["vs_leader"]["n"] == 60 and table["verdict"]["n"] == 60
    assert table["verdict"]["tied"] is True
    assert table["verdict"]["decision"] == "inconclusive"
    needed = table["verdict"]["psnr"]["images_needed"]
    assert needed > 60
    assert verdict_line(table).startswith(
        f"verdict: ≈ inconclusive between {table['verdict']['leader']} and "
        f"{table['verdict']['runner_up']} (the CI includes 0 and reaches beyond ±0.05 dB; "
        f"about {needed:,} images would decide it): Δ PSNR "
    )
    assert all(c["n"] == 60 for c in table["comparisons"])


def test_verdict_line_reports_a_real_lead_with_ci_and_p():
    rows = records("best", EASY + 1) + records("second", EASY)
    table = build_leaderboard(rows, ["second", "best"], ["lines"], {})["tables"][0]
    verdict = table["verdict"]
    assert (verdict["leader"], verdict["runner_up"], verdict["tied"]) == ("best", "second", False)
    assert verdict["psnr"]["mean"] == pytest.approx(1.0)
    line = verdict_line(table)
    # every resample mean is +1: the p-value is the bound 10,000 resamples resolve at n = 100
    assert verdict["psnr"]["p_is_bound"] and verdict["psnr"]["p_value"] < 4e-4
    assert line == (
        "verdict: best leads second: Δ PSNR +1.00 dB (95 % CI +1.00 to +1.00, p ≤ 0.0004, "
        "100 images)"
    )


def test_failures_are_counted_by_reason_most_frequent_first():
    rows = records("m", EASY, failed={3, 4, 5})
    rows[0] = {**rows[0], "status": "failed: RuntimeError: boom"}
    rows[0].pop("psnr")
    entry = build_leaderboard(rows, ["m"], ["lines"], {})["tables"][0]["entries"][0]
    assert entry["failed"] == 4 and not entry["complete"]
    assert [(f["reason"], f["count"]) for f in entry["failures"]] == [
        ("prediction contains NaN or infinite values", 3),
        ("RuntimeError: boom", 1),
    ]


def test_incomplete_and_unranked_markers_survive_json_and_markdown():
    rows = records("solid", EASY) + records("holey", EASY - 1, failed={1, 2})
    rows += records("dead", EASY, failed=set(range(N)))
    board = build_leaderboard(rows, ["solid", "holey", "dead"], ["lines"], {})
    loaded = json.loads(json.dumps(finite(board)))
    markdown = render_markdown(loaded)
    assert render_markdown(board) == markdown
    assert f"holey {INCOMPLETE_MARK}" in markdown and f"dead {INCOMPLETE_MARK}" in markdown
    assert f"solid {INCOMPLETE_MARK}" not in markdown
    assert "ranked on the 98 of 100 images that every ranked method completed" in markdown
    assert "method img/s" in markdown and "wall-clock" in markdown
    assert "×2" in markdown and "×100" in markdown


# -- the console summary of `run` -------------------------------------------------------------
def test_run_prints_failures_verdict_and_buckets_and_strict_exits_1(
    tmp_path, temp_method, capsys, single_torch_thread
):
    from benchmark.cli import main

    temp_method("nan-above-20", nan_above(0.20, "telea"))
    out = tmp_path / "run"
    argv = ["run", "--methods", "nan-above-20,telea", "--masks", "lines", "--limit", "60"]
    argv += ["--workers", "1", "--quiet", "--out", str(out)]
    assert main([*argv, "--strict", "--buckets"]) == 1
    assert (out / "leaderboard.json").exists() and (out / "leaderboard.md").exists()
    captured = capsys.readouterr()
    entry = next(
        e
        for e in json.loads((out / "leaderboard.json").read_text())["tables"][0]["entries"]
        if e["method"] == "nan-above-20"
    )
    failed = entry["failed"]
    assert 0 < failed < 60
    assert f"warning: {failed} image evaluations failed" in captured.err
    assert (
        f"nan-above-20 / lines: {failed} of 60 failed; first reason: prediction contains NaN "
        f"or infinite values ×{failed}" in captured.err
    )
    assert "error: --strict" in captured.err
    # the same values on the images both completed: a tie, the complete method listed first
    assert (
        "verdict: ≈ tie between telea and nan-above-20 (no difference beyond ±0.05 dB): "
        "Δ PSNR +0.00 dB (95 % CI +0.00 to +0.00, p = 1.0000" in captured.out
    )
    assert "mean PSNR (dB) by mask ratio" in captured.out and "60–100 %" in captured.out
    assert "method img/s" in captured.out and "s wall clock" in captured.out
    # without --strict the same failures are a warning and exit 0; no bucket table by default
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "warning:" in captured.err and "60–100 %" not in captured.out


def test_strict_passes_when_nothing_failed(tmp_path, capsys, single_torch_thread):
    from benchmark.cli import main

    argv = ["run", "--methods", "mean", "--masks", "square", "--limit", "8", "--workers", "1"]
    assert main([*argv, "--quiet", "--out", str(tmp_path / "r"), "--strict"]) == 0
    assert "warning" not in capsys.readouterr().err

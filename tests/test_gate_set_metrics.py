"""The gate decides on set metrics (FID, fid-clean, KID): a paired bootstrap over the baseline's
images, in one Holm family with the per-image metrics; an unchanged run differs by exactly 0, a
degraded method fails, a baseline file decides as the run folder it was written from, and a side
that cannot supply a set metric (no features, no ``per_set``) or a metric without a bootstrap
(P-IDS) is one line, exit 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import perceptual_fixtures  # tests/perceptual_fixtures.py (pytest's pythonpath)
import pytest
from PIL import Image

from benchmark.cli import main
from benchmark.commands.compare import compare_sides
from benchmark.commands.gate_rules import Rules, gated_metrics
from benchmark.commands.sides import load_for_gate, rename_methods
from benchmark.perceptual import inception
from benchmark.perceptual.set_bootstrap import RESAMPLES
from benchmark.run.config import RunConfig
from benchmark.run.runner import run_benchmark

#: every case runs the FID Inception (299x299) on each image: seconds per run
pytestmark = pytest.mark.slow

SIZE = 40
COUNT = 8
GATEABLE = ["fid", "fid-clean", "kid"]


@pytest.fixture(scope="module")
def material(tmp_path_factory) -> dict[str, Path]:
    """Photos, seeded Inception weights under the reference name and a feature cache."""
    root = tmp_path_factory.mktemp("set-gate")
    weights = root / "weights"
    weights.mkdir()
    fixtures = perceptual_fixtures
    fixtures._save(fixtures.inception_state(), weights / inception.WEIGHTS)
    photos = root / "photos"
    photos.mkdir()
    rng = np.random.default_rng(3)
    for k in range(COUNT):
        base = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        Image.fromarray(base).resize((SIZE, SIZE), Image.BICUBIC).save(photos / f"{k:02d}.png")
    return {"root": root, "photos": photos, "weights": weights, "cache": root / "cache"}


@pytest.fixture(scope="module")
def runs(material) -> dict[str, Path]:
    """Run folders on the same photos and masks: ``good`` (telea, ns), ``bad`` (mean, ns: the
    degraded method is compared as telea with --pair telea=mean), both measuring every
    gateable set metric, and ``plain`` (telea, ns) without any set metric."""
    root, photos, weights = material["root"], material["photos"], material["weights"]
    out = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INPAINT_BENCH_CACHE", str(material["cache"]))
        for name, methods, metrics in (
            ("good", ["telea", "ns"], ["psnr", *GATEABLE]),
            ("bad", ["mean", "ns"], ["psnr", *GATEABLE]),
            ("plain", ["telea", "ns"], ["psnr"]),
        ):
            config = RunConfig(
                methods=methods, masks=["square"], dataset=f"folder:{photos}", size=SIZE,
                workers=1, device="cpu", progress=False, out=str(root / name), metrics=metrics,
                weights_dir=str(weights), allow_unverified_weights=True,
            )  # fmt: skip
            out[name] = run_benchmark(config).run_dir
    return out


def compared(base, new, metrics, pairs=None):
    """``compare_sides`` as the command does it: {method: {metric: MetricDelta}}."""
    rules = Rules(metrics=gated_metrics(metrics))
    base_side = load_for_gate(base, "baseline", rules.names)
    new_side = load_for_gate(new, "new", rules.names)
    rename_methods(new_side, pairs or {})
    return {r.method: r for r in compare_sides(base_side, new_side, rules)}


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def table_value(run_dir: Path, method: str, metric: str) -> float:
    board = json.loads((run_dir / "leaderboard.json").read_text())
    entry = next(e for e in board["tables"][0]["entries"] if e["method"] == method)
    return entry["set_metrics"][metric]["value"]


@pytest.mark.parametrize("metric", GATEABLE)
def test_an_unchanged_run_differs_by_exactly_zero(runs, capsys, metric):
    rows = compared(runs["good"], runs["good"], [metric])
    for method in ("telea", "ns"):
        delta = rows[method].metrics[metric]
        d = delta.decision
        assert d.difference == 0 and d.ci_low == 0 and d.ci_high == 0
        assert d.verdict == "no change" and d.p == 1 and not delta.regression
        assert d.n == COUNT and d.resamples == RESAMPLES
        assert delta.base == delta.new
        if metric == "kid":  # the same sums in another order
            assert delta.new == pytest.approx(table_value(runs["good"], method, metric), rel=1e-9)
        else:  # the table's number to the bit
            assert delta.new == table_value(runs["good"], method, metric)
    code, out, _ = cli(capsys, "compare", runs["good"], runs["good"], "--metrics", metric)
    assert code == 0 and "gate: PASS" in out
    assert "(6 comparisons," in out  # PSNR, SSIM and the set metric of 2 entries: one family


@pytest.mark.parametrize("metric", GATEABLE)
def test_a_degraded_method_fails_on_the_set_metric_alone(runs, capsys, metric):
    pairs = {"mean": "telea"}
    rows = compared(runs["good"], runs["bad"], [metric], pairs)
    worse = rows["telea"].metrics[metric]
    assert worse.decision.verdict == "worse" and worse.regression
    assert worse.decision.difference == pytest.approx(
        table_value(runs["bad"], "mean", metric) - table_value(runs["good"], "telea", metric),
        rel=1e-12,
    )
    assert worse.decision.difference > 0 and worse.decision.ci_low > 0  # lower is better
    assert worse.decision.p_adjusted < 0.05
    assert rows["ns"].metrics[metric].decision.verdict == "no change"
    loose = ["--tolerance-db", "1000", "--tolerance-ssim", "1"]  # PSNR and SSIM never fail
    code, out, _ = cli(
        capsys, "compare", runs["good"], runs["bad"], "--pair", "telea=mean",
        "--metrics", metric, *loose,
    )  # fmt: skip
    assert code == 1 and "gate: FAIL — 1 regression(s): telea/square" in out
    assert "a rise: lower is better" in out and "paired bootstrap" in out
    # the other way round it is better, and passes
    rows = compared(runs["bad"], runs["good"], [metric], {"telea": "mean"})
    assert rows["mean"].metrics[metric].decision.verdict == "better"
    code, out, _ = cli(
        capsys, "compare", runs["bad"], runs["good"], "--pair", "mean=telea",
        "--metrics", metric, *loose,
    )  # fmt: skip
    assert code == 0, out
    # a tolerance larger than the rise passes
    rise = worse.decision.ci_high
    code, out, _ = cli(
        capsys, "compare", runs["good"], runs["bad"], "--pair", "telea=mean",
        "--metrics", metric, *loose, "--tolerance", f"{metric}={2 * rise}",
    )  # fmt: skip
    assert code == 0, out


def strip_notes(out: str) -> str:
    return "\n".join(line for line in out.splitlines() if not line.startswith("note:"))


def test_a_baseline_file_decides_as_its_run_folder(runs, tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    code, out, _ = cli(
        capsys, "compare", baseline, runs["good"], "--update", "--metrics", "fid,kid"
    )
    assert code == 0
    data = json.loads(baseline.read_text())
    assert "real_features" not in data  # files of the run folder, not of the baseline
    for method in ("telea", "ns"):
        for metric in ("fid", "kid"):
            item = data["per_set"]["square"][method][metric]
            assert item["indices"] == list(range(COUNT))
            assert item["value"] == pytest.approx(table_value(runs["good"], method, metric), 1e-9)
            assert len(item["replicates"]) == RESAMPLES
    assert "fid-clean" not in data["per_set"]["square"]["telea"]
    bad = tmp_path / "bad.json"
    assert cli(capsys, "compare", bad, runs["bad"], "--update", "--metrics", "fid,kid")[0] == 0
    for new, code_expected in ((runs["good"], 0), (runs["bad"], 1)):
        args = ["--pair", "telea=mean"] if new == runs["bad"] else []
        args += ["--metrics", "fid,kid", "--tolerance-db", "1000", "--tolerance-ssim", "1"]
        from_folder = cli(capsys, "compare", runs["good"], new, *args)
        assert from_folder[0] == code_expected
        new_file = bad if new == runs["bad"] else baseline
        for base_side, new_side in (
            (baseline, new),
            (runs["good"], new_file),
            (baseline, new_file),
        ):
            from_file = cli(capsys, "compare", base_side, new_side, *args)
            assert from_file[0] == code_expected
            assert strip_notes(from_folder[1]) == strip_notes(from_file[1])  # the same numbers
    # two baselines with different numbers of replicates cannot be paired
    data = json.loads(bad.read_text())
    data["per_set"]["square"]["ns"]["kid"]["replicates"] = [0.0] * (RESAMPLES - 1)
    bad.write_text(json.dumps(data))
    code, _, err = cli(capsys, "compare", baseline, bad, "--metrics", "kid")
    assert code == 2 and "hold 1000 and 999 bootstrap replicates, which cannot be paired" in err


def test_metrics_without_a_bootstrap_are_one_line_exit_2(runs, capsys):
    for metric in ("p-ids", "u-ids"):
        code, _, err = cli(capsys, "compare", runs["good"], runs["good"], "--metrics", metric)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "Traceback" not in err
        assert re.search(rf"--metrics {metric}: .*fid, fid-clean, kid.*SVM", lines[0])


def test_a_side_that_cannot_supply_a_set_metric_exits_2(runs, tmp_path, capsys):
    for base, new in ((runs["good"], runs["plain"]), (runs["plain"], runs["good"])):
        code, _, err = cli(capsys, "compare", base, new, "--metrics", "fid")
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, err
        assert "stored no 'pytorch-fid' Inception features" in lines[0]
        assert "--metrics fid" in lines[0]
    baseline = tmp_path / "plain.json"  # written without the set metric
    assert cli(capsys, "compare", baseline, runs["good"], "--update")[0] == 0
    code, _, err = cli(capsys, "compare", baseline, runs["good"], "--metrics", "kid")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "no set-metric replicates (no 'per_set' section) for kid" in err
    # a baseline whose replicates were tampered with is refused, not trusted
    full = tmp_path / "full.json"
    assert cli(capsys, "compare", full, runs["good"], "--update", "--metrics", "kid")[0] == 0
    data = json.loads(full.read_text())
    data["per_set"]["square"]["ns"]["kid"]["indices"] = list(range(COUNT - 1))
    full.write_text(json.dumps(data))
    code, _, err = cli(capsys, "compare", full, runs["good"], "--metrics", "kid")
    assert code == 2 and "its indices are not the images the entry measured" in err


def test_lost_images_fail_the_set_metric_closed(runs, tmp_path, capsys):
    """NEW without one of the baseline's images: no set comparison, a regression."""
    baseline = tmp_path / "baseline.json"
    assert cli(capsys, "compare", baseline, runs["good"], "--update", "--metrics", "fid")[0] == 0
    rows = compared(baseline, runs["good"], ["fid"])
    assert rows["ns"].metrics["fid"].decision.verdict == "no change"  # on all images
    base_side = load_for_gate(baseline, "baseline", ["psnr", "ssim", "fid"])
    new_side = load_for_gate(runs["good"], "new", ["psnr", "ssim", "fid"])
    new_side.series[("square", "ns")] = {
        k: v[1:] for k, v in new_side.series[("square", "ns")].items()
    }  # image 0 no longer measured
    rules = Rules(metrics=gated_metrics(["fid"]))
    rows = {r.method: r for r in compare_sides(base_side, new_side, rules)}
    assert rows["ns"].metrics["fid"].decision is None and rows["ns"].metrics["fid"].regression
    assert rows["ns"].regression and not rows["telea"].regression


def test_the_gate_command_decides_on_the_configurations_set_metrics(
    material, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("INPAINT_BENCH_CACHE", str(material["cache"]))
    config = tmp_path / "gate.toml"
    config.write_text(
        f'methods = ["telea", "ns"]\nmasks = ["square"]\ndataset = "folder:{material["photos"]}"\n'
        f'size = {SIZE}\nseed = 0\nworkers = 1\ndevice = "cpu"\nmetrics = ["kid"]\n'
        f'weights_dir = "{material["weights"]}"\nallow_unverified_weights = true\n'
    )
    baseline, out = tmp_path / "baseline.json", tmp_path / "ci"
    options = ["--config", config, "--baseline", baseline, "--out", out]
    assert cli(capsys, "gate", *options, "--update")[0] == 0
    assert set(json.loads(baseline.read_text())["per_set"]["square"]["ns"]) == {"kid"}
    code, printed, _ = cli(capsys, "gate", *options)
    assert code == 0 and "KID base" in printed and "(6 comparisons," in printed
    assert "gate: PASS" in printed
    # a configuration asking for a metric without a bootstrap fails before running
    config.write_text(config.read_text().replace('["kid"]', '["p-ids"]'))
    code, _, err = cli(capsys, "gate", *options)
    assert code == 2 and "P-IDS and U-IDS would need an SVM fit" in err


def test_the_gates_resample_count_is_the_bootstraps():
    from benchmark.commands import set_gate

    assert set_gate.RESAMPLES == RESAMPLES  # kept apart so that compare does not import torch


def test_set_members_follow_the_decision_rule_in_a_mixed_family():
    """p < its Holm level iff the interval excludes 0 iff Holm's adjusted p < 0.05, for set
    members as for means; a set member's p is 2 (c + 1) / (B + 1); the per-image members' own
    p-values do not change when set members join (only Holm's levels do)."""
    from benchmark.decision import decide_family
    from benchmark.decision_sets import Replicated

    rng = np.random.default_rng(4)
    means = [rng.normal(shift, 1.0, 30) for shift in (0.0, 0.5, 1.0)]
    sets = [
        Replicated(shift, rng.normal(shift, 1.0, 999), 30) for shift in (0.0, 1.5, 4.0, 5.0, 9.0)
    ]
    alone = decide_family(means)
    mixed = decide_family([*means, *sets])
    assert [d.p for d in alone] == [d.p for d in mixed[:3]]
    for d in mixed:
        excludes = d.ci_low > 0 or d.ci_high < 0
        assert d.significant == excludes == (d.p < d.alpha) == (d.p_adjusted < 0.05)
    for member, d in zip(sets, mixed[3:]):
        beyond = min(
            np.count_nonzero(member.replicates <= 0), np.count_nonzero(member.replicates >= 0)
        )
        assert d.p == pytest.approx(min(1.0, 2 * (beyond + 1) / 1000)) and d.resamples == 999
        assert d.difference == member.difference and d.n == 30
        # the interval is a pair of order statistics of the replicates themselves
        assert d.ci_low in member.replicates and d.ci_high in member.replicates
        assert d.ci_high - d.ci_low > 4  # about ±2.6 sd of the replicates at Holm's levels
    assert [d.significant for d in mixed[3:]] == [False, False, True, True, True]
    too_few = decide_family([Replicated(5.0, np.full(999, 5.0), 2)])[0]
    assert too_few.p == 1 and not too_few.significant and too_few.verdict == "inconclusive"

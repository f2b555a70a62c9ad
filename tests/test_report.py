"""The self-contained HTML report of a run."""

from __future__ import annotations

import argparse
import base64
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmark.commands import report
from benchmark.errors import DataError, UsageError
from benchmark.run.config import RunConfig
from benchmark.run.runner import run_benchmark

METHODS = ["telea", "mean", "nearest"]


def make_run(out: Path, save_images: bool, limit: int = 24) -> Path:
    config = RunConfig(
        methods=METHODS,
        masks=["lines", "square"],
        limit=limit,
        workers=1,
        out=str(out),
        save_images=save_images,
        progress=False,
    )
    return run_benchmark(config).run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors on a shared machine: one thread is faster
    try:
        root = tmp_path_factory.mktemp("runs")
        return {
            "saved": make_run(root / "saved", save_images=True),
            "plain": make_run(root / "plain", save_images=False),
        }
    finally:
        torch.set_num_threads(before)


def embedded_pngs(text: str) -> list[bytes]:
    return [
        base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)
    ]


def check_self_contained(text: str) -> None:
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "http://" not in text and "https://" not in text
    assert not re.search(r"<(script|link|iframe)\b", text)
    sources = re.findall(r'src="([^"]*)"', text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)


@pytest.mark.parametrize("kind", ["saved", "plain"])
def test_report_is_one_self_contained_file(runs, kind):
    text = report.build_report(runs[kind])
    check_self_contained(text)
    for name in [*METHODS, "lines", "square", "original", "masked input"]:
        assert name in text
    sections = ["Leaderboards", "Sample images", "PSNR versus mask ratio", "Mask-ratio buckets"]
    sections += ["Paired comparisons", "Time per image", "Configuration and versions"]
    for section in sections:
        assert section in text
    assert "1–10 %" in text and "60–100 %" in text  # NVIDIA bucket labels
    assert "scikit-image" in text and "torch" in text  # versions from run.json
    pngs = embedded_pngs(text)
    # 2 masks x 8 images x (original + masked input + 3 methods), plus the plot
    assert len(pngs) == 2 * 8 * (2 + len(METHODS)) + 1
    for png in pngs:
        assert cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED) is not None
    source = "saved PNGs of the run" if kind == "saved" else "recomputed"
    assert source in text


def test_recomputed_samples_equal_the_saved_ones(runs):
    """Without --save-images the grids are recomputed: the same pixels as the saved PNGs."""
    saved = report.build_report(runs["saved"])
    plain = report.build_report(runs["plain"])
    decode = lambda png: cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)  # noqa: E731
    a, b = [decode(p) for p in embedded_pngs(saved)], [decode(p) for p in embedded_pngs(plain)]
    assert len(a) == len(b)
    assert all(np.array_equal(x, y) for x, y in zip(a[:-1], b[:-1]))  # all but the plot
    assert "differ from the measured ones" not in plain


def test_report_stays_small_for_large_runs(runs, tmp_path):
    text = report.build_report(runs["plain"], samples=3)
    assert len(embedded_pngs(text)) == 2 * 3 * (2 + len(METHODS)) + 1
    assert len(text) < 300_000


def test_run_without_records_still_reports(runs, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(runs["plain"], copy)
    (copy / "records.jsonl").unlink()
    text = report.build_report(copy)
    check_self_contained(text)
    assert "no per-image data" in text.lower()


def test_command_writes_the_file(runs, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    report.add_arguments(parser)
    out = tmp_path / "r.html"
    assert (
        report.run(parser.parse_args([str(runs["saved"]), "--out", str(out), "--samples", "2"]))
        == 0
    )
    assert out.exists() and "report written to" in capsys.readouterr().out
    check_self_contained(out.read_text())
    with pytest.raises(UsageError, match="--samples"):
        report.run(parser.parse_args([str(runs["saved"]), "--samples", "-1"]))


def test_missing_run_directory_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        report.build_report(tmp_path / "nope")
    with pytest.raises(DataError, match="has no leaderboard.json"):
        report.build_report(tmp_path)


# -- one colour per method, one order, the same bins, readable configuration -------------------
def swatch_colours(text: str, method: str) -> set[str]:
    return set(re.findall(r'background:(#[0-9a-f]{6})"></span>' + re.escape(method), text))


def test_one_colour_and_one_column_order_per_method(runs):
    run = report.Run(runs["plain"])
    assert run.methods == METHODS  # the run's order, not a table's ranking
    assert len(set(run.colours.values())) == len(METHODS)
    text = report.build_report(runs["plain"], samples=2)
    for method in METHODS:
        assert swatch_colours(text, method) == {run.colours[method]}
    assert text.count('class="legend"') == 1
    # grid columns: the same order for every mask, whatever each mask's ranking
    rankings = [[e["method"] for e in t["entries"]] for t in run.leaderboard["tables"]]
    grids = re.findall(r'<table class="grid"><thead><tr>(.*?)</tr>', text)
    assert len(grids) == 2
    columns = [re.findall(r"</span>([^<]+)</th>", g) for g in grids]
    assert columns[0] == columns[1] == METHODS
    assert METHODS not in rankings  # precondition: a ranked column order would differ


def test_plot_bins_are_the_bucket_bins(runs):
    from benchmark.significance import BUCKET_EDGES

    run = report.Run(runs["plain"])
    data = report.plot_data(run)
    assert [mask for mask, _, _ in data] == ["lines", "square"]
    for (_, labels, lines), table in zip(data, run.leaderboard["tables"]):
        assert labels == [b["label"] for b in table["buckets"]]
        assert len(labels) == len(BUCKET_EDGES) - 1
        assert list(lines) == [m for m in METHODS if m in lines]
        for method, y in lines.items():
            expected = [
                b["methods"][method]["psnr"] if b["methods"][method]["n"] else np.nan
                for b in table["buckets"]
            ]
            np.testing.assert_allclose(y, np.array(expected, dtype=float))


def test_configuration_is_readable_and_fingerprints_are_shown(runs):
    text = report.build_report(runs["plain"], samples=0)
    assert "[&#x27;telea&#x27;" not in text and "[&quot;" not in text  # no list reprs
    assert "telea, mean, nearest" in text  # the methods of the configuration
    board = report.Run(runs["plain"]).leaderboard
    fingerprint = board["tables"][0]["entries"][0]["fingerprint"]
    assert fingerprint and report._e(fingerprint) in text
    assert "Methods and fingerprints" in text
    assert report.readable(None) == "— (default)" and report.readable([1, "a"]) == "1, a"
    assert report.readable({"radius": 3, "fast": True}) == "radius=3, fast=yes"


def test_report_ranks_like_the_leaderboard_and_shows_failures(tmp_path):
    from benchmark.leaderboard import build_leaderboard
    from benchmark.records import write_json

    rng = np.random.default_rng(0)
    records = []
    for i in range(50):
        base = {"mask": "lines", "index": i, "seconds": 0.01, "mask_ratio": 0.05 + i / 100}
        psnr = 40 + rng.normal()
        ok = {"status": "ok", "ssim": 0.9, "hole_psnr": 30.0, "hole_l1": 0.1}
        records.append({**base, **ok, "method": "steady", "psnr": psnr})
        if i < 30:  # fails the 20 largest holes, better on the rest
            records.append({**base, **ok, "method": "fragile", "psnr": psnr + 0.5})
        else:
            records.append({**base, "method": "fragile", "status": "failed: boom"})
        records.append({**base, "method": "dead", "status": "failed: ValueError: x"})
    board = build_leaderboard(records, ["dead", "fragile", "steady"], ["lines"], {})
    write_json(tmp_path / "leaderboard.json", board)
    text = report.build_report(tmp_path, samples=0)
    check_self_contained(text)
    order = [e["method"] for e in board["tables"][0]["entries"]]
    assert order == ["fragile", "steady", "dead"]
    positions = [text.index(f"</span>{m}") for m in order]
    assert positions == sorted(positions)
    assert "fragile †" in text and "dead †" in text and "boom ×20" in text
    assert "ranked on the 30 of 50 images that every ranked method completed" in text
    assert "verdict: fragile leads steady" in text and "unranked (–)" in text

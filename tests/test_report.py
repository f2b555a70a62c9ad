"""The self-contained HTML report of a run."""

from __future__ import annotations

import argparse
import base64
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmark import report
from benchmark.errors import DataError, UsageError
from benchmark.runner import RunConfig, run_benchmark

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
    assert "0–10 %" in text  # a bucket label
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

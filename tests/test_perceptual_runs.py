"""Perceptual metrics in runs: ``list metrics``, the ``--metrics`` option and its checks,
per-image LPIPS and MS-SSIM measured on the composites, shown in tables and reused on resume."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmark.perceptual import PERCEPTUAL_METRICS


# -- list metrics --------------------------------------------------------------------------------
def test_list_metrics_shows_every_perceptual_metric_without_torch():
    code = (
        "import sys\n"
        "from benchmark.cli import main\n"
        "status = main(['list', 'metrics'])\n"
        "assert 'torch' not in sys.modules, 'list metrics imported torch'\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("perceptual metrics"))
    entries = [line for line in lines[start + 1 :] if line.startswith("  ") and line[2] != " "]
    assert [line.split()[0] for line in entries] == list(PERCEPTUAL_METRICS)
    for line, (name, info) in zip(entries, PERCEPTUAL_METRICS.items()):
        arrow = "↑" if info["direction"] == "higher" else "↓"
        kind = "per-image" if info["kind"] == "image" else "per-set"
        assert f" {arrow} {kind}: {info['variant']}" in line, line
        follow = lines[lines.index(line) + 1]
        assert follow.strip() == f"reference: {info['reference']}"
    assert "lpips-alex (alias lpips) ↓ per-image" in done.stdout
    assert "fid ↓ per-set" in done.stdout and "ms-ssim ↑ per-image" in done.stdout

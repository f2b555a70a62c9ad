"""Shared fixtures of the performance suite and the ratio summary printed at its end.

Every figure is reported as a ratio against a bare loop measured in the same session, so the
numbers compare across machines. Run with ``python -m pytest benchmarks --benchmark-only``.
"""

from __future__ import annotations

import pytest

from benchmark.datasets import build_dataset
from benchmark.masking import build_mask

N_IMAGES = 1000
#: median seconds of each benchmark, by name, filled as the benchmarks run
MEDIANS: dict[str, float] = {}
#: (label, numerator benchmark, denominator benchmark) ratios shown at the end of the session
RATIOS = [
    (
        "telea: harness method path, 1 worker / bare cv2.inpaint loop",
        "harness_telea_w1",
        "bare_telea",
    ),
    (
        "telea: full run (masks, metrics, records), 1 worker / bare loop",
        "run_telea_w1",
        "bare_telea",
    ),
    ("telea: speed-up of 2 workers over 1 (method path)", "harness_telea_w1", "harness_telea_w2"),
    ("telea: speed-up of 2 workers over 1 (full run)", "run_telea_w1", "run_telea_w2"),
    ("telea: speed-up of 2 Ray workers over 1 (full run)", "ray_w1", "ray_w2"),
    (
        "4 methods x 2 masks on the whole test split: speed-up of 2 workers over 1",
        "split_w1",
        "split_w2",
    ),
    ("2 methods / 1 method (full run, 1,000 patches)", "methods_2", "methods_1"),
    ("4 methods / 1 method (full run, 1,000 patches)", "methods_4", "methods_1"),
    ("run time 128x128 / 32x32 (same images)", "size_128", "size_32"),
    ("run time 256x256 / 32x32 (same images)", "size_256", "size_32"),
    ("run time 512x512 / 32x32 (same images)", "size_512", "size_32"),
    ("unet on cpu: harness method path / bare model loop", "harness_unet_cpu", "bare_unet_cpu"),
    ("unet on cuda: harness method path / bare model loop", "harness_unet_cuda", "bare_unet_cuda"),
]
#: (label, benchmark) pairs whose images per second (N_IMAGES / median) the summary shows
THROUGHPUTS = [
    ("unet on cpu, harness method path (32x32, batches of 256)", "harness_unet_cpu"),
    ("unet on cuda, harness method path (32x32, batches of 256)", "harness_unet_cuda"),
]


@pytest.fixture(scope="session")
def test_images():
    """The first 1,000 test patches of the default data set and their ``lines`` masks."""
    dataset = build_dataset("skimage-patches", "test")
    indices = list(range(min(N_IMAGES, len(dataset))))
    images = dataset.images(indices)
    masks = build_mask("lines").batch(indices, *images.shape[-2:], seed=0)
    return images, masks


@pytest.fixture
def remember():
    """``remember(benchmark, name)`` keeps the benchmark's median for the ratio summary."""

    def _remember(benchmark, name: str) -> None:
        MEDIANS[name] = benchmark.stats.stats.median

    return _remember


#: other figures (shares, images per second) by label, filled through the ``figure`` fixture
FIGURES: dict[str, float] = {}


@pytest.fixture
def figure():
    """``figure(label, value)`` adds a figure to the summary printed at the end."""

    def _figure(label: str, value: float) -> None:
        FIGURES[label] = value

    return _figure


def pytest_terminal_summary(terminalreporter):
    lines = []
    for label, top, bottom in RATIOS:
        if top in MEDIANS and bottom in MEDIANS:
            lines.append(f"{label}: {MEDIANS[top] / MEDIANS[bottom]:.3f}")
    for label, name in THROUGHPUTS:
        if name in MEDIANS:
            lines.append(f"{label}: {N_IMAGES / MEDIANS[name]:,.0f} images/s")
    lines += [f"{label}: {value:.3f}" for label, value in FIGURES.items()]
    if lines:
        terminalreporter.section("ratios (same session)")
        for line in lines:
            terminalreporter.write_line(line)

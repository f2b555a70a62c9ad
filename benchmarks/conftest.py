"""Shared fixtures of the performance suite and the ratio summary printed at its end.

Every figure is reported as a ratio against a bare loop measured in the same session, so the
numbers compare across machines. Each ratio is also written into the ``extra_info`` of the
benchmark that completes it (``--benchmark-json`` keeps them). Run with
``python -m pytest benchmarks --benchmark-only``.

The harness side of an overhead figure is always the real run path: the pipeline's pair
evaluation of prepared units (:func:`benchmark.run.pipeline.run_prepared`, what a run does to a
batch once it is decoded and its masks drawn), the pipeline's whole unit
(:func:`benchmark.run.pipeline.evaluate_unit`), or the whole ``run_benchmark``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from benchmark.datasets import build_dataset
from benchmark.masking import build_mask
from benchmark.records import STATUS_OK
from benchmark.run.config import RunConfig
from benchmark.run.pipeline import (
    Context,
    Prepared,
    Unit,
    evaluate_unit,
    measure,
    prepare_unit,
    run_prepared,
    split_units,
)
from benchmark.run.plan import build_plan

N_IMAGES = 1000
#: Images per batch of every harness case (the run's default at 32x32).
BATCH = 256
#: median seconds of each benchmark, by name, filled as the benchmarks run
MEDIANS: dict[str, float] = {}

Terms = str | tuple[str, ...]
#: (label, numerator, denominator) ratios shown at the end of the session; a term that is a
#: tuple of benchmark names stands for the sum of their medians
RATIOS: list[tuple[str, Terms, Terms]] = [
    ("telea: pair evaluation (method, checks, metrics) / bare loop", "pair_telea", "bare_telea"),
    ("telea: measuring alone (composite, metrics) / bare loop", "measure_telea", "bare_telea"),
    (
        "telea: pair evaluation / (bare loop + measuring)",
        "pair_telea",
        ("bare_telea", "measure_telea"),
    ),
    ("telea: whole unit (decode, masks, pairs) / bare loop", "unit_telea", "bare_telea"),
    ("telea: full run (records, leaderboard), 1 worker / bare loop", "run_telea_w1", "bare_telea"),
    ("telea: speed-up of 2 workers over 1 (full run)", "run_telea_w1", "run_telea_w2"),
    ("onnx unet-fill: pair evaluation / bare session loop", "harness_onnx", "bare_onnx"),
    (
        "onnx unet-fill: pair evaluation / (bare loop + measuring)",
        "harness_onnx",
        ("bare_onnx", "measure_onnx"),
    ),
    ("predictions: pair evaluation / bare PNG reading", "harness_predictions", "bare_predictions"),
    (
        "predictions: pair evaluation / (bare reading + measuring)",
        "harness_predictions",
        ("bare_predictions", "measure_predictions"),
    ),
    ("unet on cpu: pair evaluation / bare model loop", "harness_unet_cpu", "bare_unet_cpu"),
    (
        "unet on cpu: pair evaluation / (bare model loop + measuring)",
        "harness_unet_cpu",
        ("bare_unet_cpu", "measure_unet_cpu"),
    ),
    ("unet on cuda: pair evaluation / bare model loop", "harness_unet_cuda", "bare_unet_cuda"),
    (
        "unet on cuda: pair evaluation / (bare model loop + measuring)",
        "harness_unet_cuda",
        ("bare_unet_cuda", "measure_unet_cuda"),
    ),
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
    ("start-up: python -m benchmark --help / python -c pass", "startup_help", "startup_python"),
    (
        "start-up: python -m benchmark run --help / python -c pass",
        "startup_run_help",
        "startup_python",
    ),
    ("start-up: python -m benchmark list / python -c pass", "startup_list", "startup_python"),
]
#: (label, benchmark) pairs whose images per second (N_IMAGES / median) the summary shows
THROUGHPUTS = [
    ("unet on cpu, pair evaluation (32x32, batches of 256)", "harness_unet_cpu"),
    ("unet on cuda, pair evaluation (32x32, batches of 256)", "harness_unet_cuda"),
]

#: (label, benchmark) pairs whose median seconds the summary shows
SECONDS = [
    ("start-up: python -c pass", "startup_python"),
    ("start-up: python -m benchmark --help", "startup_help"),
    ("start-up: python -m benchmark run --help", "startup_run_help"),
    ("start-up: python -m benchmark list", "startup_list"),
]


def _total(terms: Terms) -> float | None:
    """The summed medians of ``terms``, or ``None`` while one of them is not measured yet."""
    names = (terms,) if isinstance(terms, str) else terms
    if not all(name in MEDIANS for name in names):
        return None
    return sum(MEDIANS[name] for name in names)


def _names(terms: Terms) -> tuple[str, ...]:
    return (terms,) if isinstance(terms, str) else terms


@pytest.fixture(scope="session")
def test_images() -> tuple[torch.Tensor, torch.Tensor]:
    """The first 1,000 test patches of the default data set and their ``lines`` masks."""
    dataset = build_dataset("skimage-patches", "test")
    indices = list(range(min(N_IMAGES, len(dataset))))
    images = dataset.images(indices)
    masks = build_mask("lines").batch(indices, *images.shape[-2:], seed=0)
    return images, masks


@pytest.fixture
def remember() -> Callable[[Any, str], None]:
    """``remember(benchmark, name)`` keeps the benchmark's median for the ratio summary and
    writes every ratio it completes into the benchmark's ``extra_info``."""

    def _remember(benchmark, name: str) -> None:
        MEDIANS[name] = benchmark.stats.stats.median
        benchmark.extra_info["median_s"] = MEDIANS[name]
        for label, top, bottom in RATIOS:
            if name not in _names(top) + _names(bottom):
                continue
            numerator, denominator = _total(top), _total(bottom)
            if numerator is not None and denominator is not None:
                benchmark.extra_info[label] = numerator / denominator

    return _remember


#: other figures (shares, images per second) by label, filled through the ``figure`` fixture
FIGURES: dict[str, float] = {}


@pytest.fixture
def figure() -> Callable[[str, float], None]:
    """``figure(label, value)`` adds a figure to the summary printed at the end."""

    def _figure(label: str, value: float) -> None:
        FIGURES[label] = value

    return _figure


@dataclass
class Batches:
    """A run's plan cut into units of :data:`BATCH` images, each unit prepared (decoded, masks
    drawn) ahead of timing, as the run's executors prepare them while the previous unit runs."""

    context: Context
    units: list[Unit]
    prepared: list[Prepared]

    @property
    def records(self) -> int:
        """Records one evaluation of every unit makes."""
        return sum(unit.size for unit in self.units)

    def evaluate_pairs(self) -> list[dict[str, Any]]:
        """The pipeline's pair evaluation of every prepared unit (``run_prepared``)."""
        return [
            record
            for unit, prepared in zip(self.units, self.prepared)
            for record in run_prepared(self.context, unit, prepared)
        ]

    def evaluate_units(self) -> list[dict[str, Any]]:
        """The pipeline's whole batch function on every unit (``evaluate_unit``)."""
        return [record for unit in self.units for record in evaluate_unit(self.context, unit)]

    def check_inputs(self, images: torch.Tensor, masks: torch.Tensor) -> None:
        """Fail unless the prepared units hold exactly ``images`` and ``masks`` in index order
        (so the bare loop and the harness work on the same inputs)."""
        (mask_name,) = self.context.masks
        originals = torch.cat([p.originals for p in self.prepared])
        drawn = torch.cat([p.masks[mask_name][1] for p in self.prepared])
        assert torch.equal(originals, images), "the pipeline decoded other images"
        assert torch.equal(drawn, masks), "the pipeline drew other masks"

    def check_records(self, records: Sequence[dict[str, Any]]) -> None:
        """Fail unless ``records`` are one evaluation of every unit and all succeeded."""
        assert len(records) == self.records
        failed = [r["status"] for r in records if r["status"] != STATUS_OK]
        assert not failed, f"{len(failed)} records failed, e.g. {failed[0]}"

    def measuring(
        self, device: torch.device
    ) -> Callable[[Sequence[torch.Tensor]], list[dict[str, list[float]]]]:
        """A function that measures one prediction per unit with the pipeline's
        :func:`measure` (composite, every metric), the units' originals and masks already on
        ``device``: the measuring half of a pair evaluation, alone."""
        (mask_name,) = self.context.masks
        inputs = [(p.originals.to(device), p.masks[mask_name][1].to(device)) for p in self.prepared]

        def _measure(predictions: Sequence[torch.Tensor]) -> list[dict[str, list[float]]]:
            assert len(predictions) == len(inputs)
            return [measure(o, pred, m)[0] for (o, m), pred in zip(inputs, predictions)]

        return _measure


@pytest.fixture
def batches() -> Callable[..., Batches]:
    """``batches(methods=[...], limit=N, device=...)``: the plan of a one-worker run on the
    default data set with ``lines`` masks (other :class:`RunConfig` fields may be given), cut
    into units of :data:`BATCH` images and prepared."""

    def _batches(**settings: Any) -> Batches:
        settings = {"masks": ["lines"], "workers": 1, "batch_size": BATCH, **settings}
        plan = build_plan(RunConfig(progress=False, **settings))
        ctx = plan.context
        todo = {(m, k): list(range(plan.count)) for k in ctx.masks for m in ctx.methods}
        units = split_units(todo, plan.batch_size)
        return Batches(ctx, units, [prepare_unit(ctx, unit) for unit in units])

    return _batches


def pytest_terminal_summary(terminalreporter) -> None:
    lines = []
    for label, top, bottom in RATIOS:
        numerator, denominator = _total(top), _total(bottom)
        if numerator is not None and denominator is not None:
            lines.append(f"{label}: {numerator / denominator:.3f}")
    for label, name in THROUGHPUTS:
        if name in MEDIANS:
            lines.append(f"{label}: {N_IMAGES / MEDIANS[name]:,.0f} images/s")
    lines += [f"{label}: {MEDIANS[name]:.3f} s" for label, name in SECONDS if name in MEDIANS]
    lines += [f"{label}: {value:.3f}" for label, value in FIGURES.items()]
    if lines:
        terminalreporter.section("ratios (same session)")
        for line in lines:
            terminalreporter.write_line(line)

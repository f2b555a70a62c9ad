"""What the run path adds around a method, measured against a bare ``cv2.inpaint`` loop.

All cases work on the same 1,000 test patches and ``lines`` masks (seed 0), checked equal.

* ``bare_telea``: ``cv2.inpaint`` (Telea, radius 3) over the masked uint8 images, nothing else.
* ``measure_telea``: the pipeline's ``measure`` (composite, every metric) of the bare loop's
  outputs, in the run's batches of 256: the measuring half of a pair evaluation, alone.
* ``pair_telea``: the pipeline's pair evaluation of the four prepared units (``run_prepared``:
  fresh input copies, the ``telea`` method under the per-batch time limit, output checks,
  measuring, one record per image), i.e. what a run does to a batch after prefetching it.
* ``unit_telea``: the pipeline's whole batch function (``evaluate_unit``: decoding and mask
  drawing as well).
* ``run_telea_w{1,2}``: the whole ``run_benchmark`` into a fresh folder (plan, lock, executor,
  records, leaderboard files), with 1 and 2 workers.

The summary prints each harness case over the bare loop, and the pair evaluation over bare loop
plus measuring (what the harness's own plumbing costs).
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import torch

from benchmark.method import to_uint8_hwc
from benchmark.run.config import RunConfig
from benchmark.run.runner import run_benchmark

N_IMAGES = 1000  # the conftest fixture serves this many images
BATCH = 256  # images per unit (conftest.BATCH)
_runs = itertools.count()


def _bare_inputs(images: torch.Tensor, masks: torch.Tensor) -> tuple[list, list]:
    """The masked images as uint8 HWC arrays and the holes as 0/255 uint8 masks."""
    pixels = to_uint8_hwc(images.masked_fill(masks, 0.0))
    holes = masks[:, 0].numpy().astype(np.uint8) * 255
    return list(pixels), list(holes)


def _bare_loop(pixels: list, holes: list) -> list[np.ndarray]:
    return [cv2.inpaint(p, h, 3, cv2.INPAINT_TELEA) for p, h in zip(pixels, holes)]


def test_bare_telea(benchmark, test_images, remember):
    pixels, holes = _bare_inputs(*test_images)
    filled = benchmark.pedantic(_bare_loop, (pixels, holes), rounds=10, warmup_rounds=1)
    assert len(filled) == N_IMAGES
    remember(benchmark, "bare_telea")


def _bare_predictions(test_images) -> list[torch.Tensor]:
    """The bare loop's outputs as float predictions, one tensor per unit of the run."""
    filled = np.stack(_bare_loop(*_bare_inputs(*test_images)))
    predictions = torch.from_numpy(filled).permute(0, 3, 1, 2).float().div(255)
    return list(predictions.split(BATCH))


def test_measure_telea(benchmark, test_images, batches, remember):
    plan = batches(methods=["telea"], limit=N_IMAGES, device="cpu")
    plan.check_inputs(*test_images)
    measuring = plan.measuring(torch.device("cpu"))
    values = benchmark.pedantic(measuring, (_bare_predictions(test_images),), rounds=10)
    assert sum(len(v["psnr"]) for v in values) == N_IMAGES
    remember(benchmark, "measure_telea")


def test_pair_telea(benchmark, test_images, batches, remember):
    plan = batches(methods=["telea"], limit=N_IMAGES, device="cpu")
    plan.check_inputs(*test_images)
    records = benchmark.pedantic(plan.evaluate_pairs, rounds=10, warmup_rounds=1)
    plan.check_records(records)
    # the harness ran the same cv2.inpaint on the same inputs: the bare loop's values, exactly
    expected = plan.measuring(torch.device("cpu"))(_bare_predictions(test_images))
    for metric in expected[0]:
        assert [r[metric] for r in records] == [v for part in expected for v in part[metric]]
    remember(benchmark, "pair_telea")


def test_unit_telea(benchmark, test_images, batches, remember):
    plan = batches(methods=["telea"], limit=N_IMAGES, device="cpu")
    records = benchmark.pedantic(plan.evaluate_units, rounds=10, warmup_rounds=1)
    plan.check_records(records)
    remember(benchmark, "unit_telea")


def _full_run(benchmark, tmp_path, remember, workers: int, name: str) -> None:
    def full_run():
        config = RunConfig(
            methods=["telea"],
            masks=["lines"],
            limit=N_IMAGES,
            workers=workers,
            device="cpu",
            out=str(tmp_path / f"run{next(_runs)}"),
            progress=False,
        )
        return run_benchmark(config)

    result = benchmark.pedantic(full_run, rounds=3, warmup_rounds=1)
    assert result.computed == N_IMAGES and result.failed == 0 and result.reused == 0
    remember(benchmark, name)


def test_run_telea_1_worker(benchmark, tmp_path, remember):
    _full_run(benchmark, tmp_path, remember, 1, "run_telea_w1")


def test_run_telea_2_workers(benchmark, tmp_path, remember):
    _full_run(benchmark, tmp_path, remember, 2, "run_telea_w2")

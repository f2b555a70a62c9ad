"""Harness overhead and CPU scaling, measured against a bare ``cv2.inpaint`` loop.

* ``bare_telea``: ``cv2.inpaint`` over 1,000 uint8 images, nothing else.
* ``harness_telea_w{1,2}``: the same images through the harness's method path (tensor <-> uint8
  conversion, the ``telea`` method, output validation), with 1 and 2 worker threads.
* ``run_telea_w{1,2}``: the whole ``run_benchmark`` (data loading, mask drawing, metrics,
  records and leaderboard files), with 1 and 2 workers.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from benchmark.method import METHODS, to_uint8_hwc
from benchmark.run.runner import Evaluator, RunConfig, run_benchmark

N_IMAGES = 1000  # the conftest fixture serves this many images


def test_bare_telea(benchmark, test_images, remember):
    images, masks = test_images
    pixels = to_uint8_hwc(images)
    holes = masks[:, 0].numpy().astype(np.uint8) * 255

    def bare_loop():
        return [cv2.inpaint(p, h, 3, cv2.INPAINT_TELEA) for p, h in zip(pixels, holes)]

    benchmark.pedantic(bare_loop, rounds=10, warmup_rounds=1)
    remember(benchmark, "bare_telea")


def _harness(benchmark, test_images, remember, workers: int, name: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    images, masks = test_images
    masked = images.masked_fill(masks, 0.0)
    with ThreadPoolExecutor(workers) as pool:
        evaluator = Evaluator(METHODS.build("telea"), torch.device("cpu"), pool, workers)

        def harness():
            return [
                evaluator.predict(masked[i : i + 256], masks[i : i + 256])
                for i in range(0, len(masked), 256)
            ]

        benchmark.pedantic(harness, rounds=10, warmup_rounds=1)
    remember(benchmark, name)


def test_harness_telea_1_worker(benchmark, test_images, remember):
    _harness(benchmark, test_images, remember, 1, "harness_telea_w1")


def test_harness_telea_2_workers(benchmark, test_images, remember):
    _harness(benchmark, test_images, remember, 2, "harness_telea_w2")


def _full_run(benchmark, tmp_path, remember, workers: int, name: str) -> None:
    counter = iter(range(1000))

    def full_run():
        config = RunConfig(
            methods=["telea"],
            masks=["lines"],
            limit=N_IMAGES,
            workers=workers,
            out=str(tmp_path / f"run{next(counter)}"),
            progress=False,
        )
        return run_benchmark(config)

    result = benchmark.pedantic(full_run, rounds=3, warmup_rounds=1)
    assert result.computed == N_IMAGES
    remember(benchmark, name)


def test_run_telea_1_worker(benchmark, tmp_path, remember):
    _full_run(benchmark, tmp_path, remember, 1, "run_telea_w1")


def test_run_telea_2_workers(benchmark, tmp_path, remember):
    _full_run(benchmark, tmp_path, remember, 2, "run_telea_w2")

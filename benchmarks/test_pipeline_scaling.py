"""How the whole run scales: workers, image size, number of methods, Ray workers, and where the
time of a 256x256 run goes.

* ``run256_telea_ns_mean``: a full run at 256x256 (telea, ns and mean on 48 photos, lines and
  square, 1 worker), with the seconds spent decoding images and computing metrics counted; the
  summary shows their share of the run's wall time.
* ``size_<S>``: telea and mean on lines over 48 photos at S x S (S = 32, 128, 256, 512), 1 worker;
  the summary shows images per second and the cost per image relative to 32x32.
* ``methods_<K>``: K methods (mean; + nearest; + telea, ns) on 1,000 test patches, lines, 1
  worker; the summary shows the time relative to one method.
* ``split_w<K>``: telea, ns, nearest and mean on the whole test split (3,576 patches), lines and
  square, with K workers: a run large enough that start-up and the leaderboard matter less; the
  summary shows the speed-up of 2 over 1.
* ``ray_w<K>``: telea on 1,000 test patches with ``--executor ray`` on a local cluster of K CPUs
  (cluster start-up not timed); the summary shows the speed-up of 2 over 1.

Run with ``python -m pytest benchmarks/test_pipeline_scaling.py --benchmark-only`` (on an idle
machine for publishable figures).
"""

from __future__ import annotations

import itertools
import time

import cv2
import numpy as np
import pytest
from skimage import data

import benchmark.run.pipeline as pipeline
from benchmark.datasets.folder import FolderDataset
from benchmark.run.config import RunConfig
from benchmark.run.runner import run_benchmark

PHOTOS = ["astronaut", "chelsea", "coffee", "hubble_deep_field", "rocket", "retina"]
N_PHOTOS = 48
SIZES = [32, 128, 256, 512]
_runs = itertools.count()


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """48 colour photos: scikit-image's, each also flipped, rotated and cropped."""
    folder = tmp_path_factory.mktemp("photos")
    count = 0
    for name in PHOTOS:
        image = getattr(data, name)()[..., :3]
        variants = [image, image[:, ::-1], np.rot90(image), image[::-1]]
        h, w = image.shape[:2]
        variants += [image[: h * 3 // 4, : w * 3 // 4], image[h // 4 :, w // 4 :]]
        variants += [np.rot90(image, 3), image[::-1, ::-1]]
        for variant in variants:
            bgr = np.ascontiguousarray(variant[..., ::-1])
            cv2.imwrite(str(folder / f"{count:03d}.png"), bgr)
            count += 1
    assert count == N_PHOTOS
    return folder


def _run(tmp_path, **settings):
    config = RunConfig(progress=False, out=str(tmp_path / f"r{next(_runs)}"), **settings)
    return run_benchmark(config)


class Stopwatch:
    """Seconds spent inside wrapped functions (decoding, metrics), summed over calls."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def wrap(self, name, function):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

        return timed


def test_run256_share_of_decoding_and_metrics(
    benchmark, tmp_path, photo_folder, monkeypatch, remember, figure
):
    watch = Stopwatch()
    monkeypatch.setattr(FolderDataset, "images", watch.wrap("decode", FolderDataset.images))
    monkeypatch.setattr(pipeline, "compute_all", watch.wrap("metrics", pipeline.compute_all))
    settings = dict(
        methods=["telea", "ns", "mean"],
        masks=["lines", "square"],
        dataset=f"folder:{photo_folder}",
        size=256,
        workers=1,
    )
    walls = []

    def full_run():
        watch.seconds.clear()
        started = time.perf_counter()
        result = _run(tmp_path, **settings)
        walls.append((time.perf_counter() - started, dict(watch.seconds)))
        return result

    result = benchmark.pedantic(full_run, rounds=3, warmup_rounds=0)
    assert result.computed == 3 * 2 * N_PHOTOS and result.failed == 0
    wall, seconds = sorted(walls)[len(walls) // 2]
    figure("256x256 run: decoding share of wall time", seconds["decode"] / wall)
    figure("256x256 run: metrics share of wall time", seconds["metrics"] / wall)
    figure("256x256 run: decoding + metrics share", (seconds["decode"] + seconds["metrics"]) / wall)
    remember(benchmark, "run256_telea_ns_mean")


@pytest.mark.parametrize("size", SIZES)
def test_cost_versus_image_size(benchmark, tmp_path, photo_folder, remember, figure, size):
    settings = dict(
        methods=["telea", "mean"],
        masks=["lines"],
        dataset=f"folder:{photo_folder}",
        size=size,
        workers=1,
    )
    result = benchmark.pedantic(lambda: _run(tmp_path, **settings), rounds=3, warmup_rounds=0)
    assert result.computed == 2 * N_PHOTOS
    remember(benchmark, f"size_{size}")
    figure(
        f"size {size}: images/s (2 methods, 1 mask, 1 worker)",
        2 * N_PHOTOS / benchmark.stats.stats.median,
    )


METHOD_SETS = {1: ["mean"], 2: ["mean", "nearest"], 4: ["mean", "nearest", "telea", "ns"]}


@pytest.mark.parametrize("count", sorted(METHOD_SETS))
def test_cost_versus_number_of_methods(benchmark, tmp_path, remember, count):
    settings = dict(methods=METHOD_SETS[count], masks=["lines"], limit=1000, workers=1)
    result = benchmark.pedantic(lambda: _run(tmp_path, **settings), rounds=3, warmup_rounds=0)
    assert result.computed == 1000 * count
    remember(benchmark, f"methods_{count}")


@pytest.mark.parametrize("workers", [1, 2])
def test_whole_split_workers(benchmark, tmp_path, remember, workers):
    settings = dict(
        methods=["telea", "ns", "nearest", "mean"], masks=["lines", "square"], workers=workers
    )
    result = benchmark.pedantic(lambda: _run(tmp_path, **settings), rounds=2, warmup_rounds=0)
    assert result.computed == 4 * 2 * 3576 and result.failed == 0
    remember(benchmark, f"split_w{workers}")


@pytest.mark.parametrize("cpus", [1, 2])
def test_ray_workers(benchmark, tmp_path, remember, cpus):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        settings = dict(methods=["telea"], masks=["lines"], limit=1000, workers=cpus)
        result = benchmark.pedantic(
            lambda: _run(tmp_path, executor="ray", **settings), rounds=3, warmup_rounds=1
        )
    finally:
        ray.shutdown()
    assert result.computed == 1000
    remember(benchmark, f"ray_w{cpus}")

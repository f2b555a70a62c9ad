"""LPIPS and FID-feature throughput of ``benchmark.perceptual`` against torchmetrics, on the CPU.

Both sides measure the same 32 photo-like 256x256 images in one batch, in the same session:

* LPIPS (AlexNet): :func:`benchmark.perceptual.lpips.lpips` against torchmetrics'
  ``LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True)``;
* FID features: :func:`benchmark.perceptual.inception.features` (pytorch-fid's resize, batch 32)
  against torchmetrics' ``FrechetInceptionDistance(normalize=True).update(images, real=True)``
  (torch-fidelity's Inception, which pays the same network plus its own resize).

Weight values do not change the cost, so both sides load seeded stand-ins of the weight files
(``tests/perceptual_fixtures.py``), under torchvision's and torch-fidelity's names in a temporary
``TORCH_HOME``: nothing is downloaded. The summary prints images/s of each side and the ratio
ours / torchmetrics (above 1: faster). Needs torchmetrics with torchvision and torch-fidelity
(torchvision only imports beside its own torch build), so it runs in the scratch environment
of ``scripts/make_perceptual_golden.py`` with the project's own dependencies added (the suite's
conftest imports the harness); elsewhere it is skipped::

    /tmp/refvenv/bin/python -m pip install pytest pytest-benchmark kornia scikit-image tabulate \
        opencv-contrib-python-headless tqdm safetensors simplejpeg matplotlib
    PYTHONPATH=. /tmp/refvenv/bin/python -m pytest benchmarks/test_perceptual_throughput.py \
        --benchmark-only

On a shared machine the load drifts between tests; the ratio is only as good as that.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("torchvision")
pytest.importorskip("torch_fidelity")
torchmetrics_image = pytest.importorskip("torchmetrics.image")

from benchmark.perceptual import inception, lpips  # noqa: E402

BATCH, SIDE = 32, 256
SECONDS: dict[str, float] = {}


def _fixtures():  # noqa: ANN202
    path = Path(__file__).parents[1] / "tests" / "perceptual_fixtures.py"
    spec = importlib.util.spec_from_file_location("perceptual_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seeded weight files, also placed in a temporary torch hub cache for torchmetrics."""
    root = tmp_path_factory.mktemp("perceptual_weights")
    paths = _fixtures().write_weights(root / "flat")
    hub = root / "torch" / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    for name, path in paths.items():
        shutil.copy(path, hub / "checkpoints" / name)
    fidelity = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's name, same bytes
    shutil.copy(paths[inception.WEIGHTS], hub / "checkpoints" / fidelity)
    before = torch.hub.get_dir()
    torch.hub.set_dir(str(hub))
    yield root / "flat"
    torch.hub.set_dir(before)


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    """Two batches of 32 smooth random 256x256 images in [0, 1] (a pair per image)."""
    rng = np.random.default_rng(0)
    coarse = torch.from_numpy(rng.uniform(0, 1, (2 * BATCH, 3, 16, 16)).astype(np.float32))
    smooth = torch.nn.functional.interpolate(coarse, size=(SIDE, SIDE), mode="bicubic")
    noisy = smooth + torch.from_numpy(rng.normal(0, 0.03, smooth.shape).astype(np.float32))
    both = noisy.clamp(0, 1)
    return both[:BATCH].contiguous(), both[BATCH:].contiguous()


def _record(benchmark, name: str, figure) -> None:  # noqa: ANN001
    SECONDS[name] = benchmark.stats.stats.median
    benchmark.extra_info["images_per_s"] = BATCH / SECONDS[name]
    figure(
        f"perceptual: {name} images/s (batch {BATCH}, {SIDE}x{SIDE}, CPU)", BATCH / SECONDS[name]
    )
    for metric in ("lpips", "fid_features"):
        ours, theirs = SECONDS.get(f"{metric}_ours"), SECONDS.get(f"{metric}_torchmetrics")
        if ours and theirs:
            figure(f"perceptual: {metric} throughput, ours / torchmetrics", theirs / ours)


def test_lpips_torchmetrics(benchmark, weights_dir: Path, images, figure) -> None:  # noqa: ANN001
    metric = torchmetrics_image.LearnedPerceptualImagePatchSimilarity(
        net_type="alex", normalize=True, reduction="sum"
    )
    x, y = images
    with torch.inference_mode():
        benchmark.pedantic(lambda: metric(x, y), rounds=3, warmup_rounds=1)
    _record(benchmark, "lpips_torchmetrics", figure)


def test_lpips_ours(benchmark, weights_dir: Path, images, figure) -> None:  # noqa: ANN001
    x, y = images
    kwargs = {"weights_dir": weights_dir, "allow_unverified": True, "download": False}
    benchmark.pedantic(lambda: lpips.lpips(x, y, "alex", **kwargs), rounds=3, warmup_rounds=1)
    _record(benchmark, "lpips_ours", figure)


def test_fid_features_torchmetrics(benchmark, weights_dir: Path, images, figure) -> None:  # noqa: ANN001
    metric = torchmetrics_image.FrechetInceptionDistance(feature=2048, normalize=True)
    x, _ = images
    with torch.inference_mode():
        benchmark.pedantic(lambda: metric.update(x, real=True), rounds=3, warmup_rounds=1)
    _record(benchmark, "fid_features_torchmetrics", figure)


def test_fid_features_ours(benchmark, weights_dir: Path, images, figure) -> None:  # noqa: ANN001
    x, _ = images
    kwargs = {"weights_dir": weights_dir, "allow_unverified": True, "download": False}
    benchmark.pedantic(
        lambda: inception.features(x, batch_size=BATCH, **kwargs), rounds=3, warmup_rounds=1
    )
    _record(benchmark, "fid_features_ours", figure)

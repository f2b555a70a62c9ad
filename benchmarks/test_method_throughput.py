"""Throughput of every registered method at 32x32, 256x256 and 512x512, in images per second.

Each method fills real photo crops (scikit-image's astronaut, chelsea, coffee, rocket) under
``square`` masks through its ``inpaint`` call on the CPU: 32 images at 32x32, 4 at 256x256 and 2
at 512x512. A bare ``cv2.inpaint`` Telea loop over the same images is measured in the same
session, and each entry's ``extra_info`` holds its images/s and its time relative to that loop,
so figures compare across machines. Methods slower than 10 images/s at 256x256 on 2 cores
should carry a ``slow_note``.

Run with ``python -m pytest benchmarks/test_method_throughput.py --benchmark-only``.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from benchmark.masking import build_mask
from benchmark.method import METHODS, to_uint8_hwc

#: (side, number of images)
SIZES = [(32, 32), (256, 4), (512, 2)]
BARE: dict[int, float] = {}


def crops(count: int, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` photo crops (N, 3, side, side) resized from 512x512 centre crops, and masks."""
    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    images = []
    for i in range(count):
        photo = photos[i % len(photos)]
        height, width = photo.shape[:2]
        short = min(height, width)
        top, left = (height - short) // 2, (width - short) // 2
        square = photo[top : top + short, left : left + short]
        images.append(cv2.resize(square, (side, side), interpolation=cv2.INTER_AREA))
    tensor = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255)
    return tensor, build_mask("square").batch(range(count), side, side, seed=0)


@pytest.mark.parametrize(("side", "count"), SIZES, ids=[f"{s}px" for s, _ in SIZES])
def test_bare_telea_loop(benchmark, side: int, count: int) -> None:
    images, masks = crops(count, side)
    pixels = to_uint8_hwc(images.masked_fill(masks, 0))
    holes = masks[:, 0].numpy().astype(np.uint8) * 255

    def bare_loop():
        return [cv2.inpaint(p, h, 3, cv2.INPAINT_TELEA) for p, h in zip(pixels, holes)]

    benchmark.pedantic(bare_loop, rounds=3, warmup_rounds=1)
    BARE[side] = benchmark.stats.stats.median
    benchmark.extra_info["images_per_s"] = count / BARE[side]


#: Methods built from a user's file (onnx:, torchscript:, predictions:) are measured in
#: ``test_outside_models.py``: they cannot be built without one.
NAMES = [n for n in METHODS.names() if not getattr(METHODS.get(n), "requires_path", False)]


@pytest.mark.parametrize(("side", "count"), SIZES, ids=[f"{s}px" for s, _ in SIZES])
@pytest.mark.parametrize("name", NAMES)
def test_method_throughput(benchmark, name: str, side: int, count: int) -> None:
    method = METHODS.build(name)
    images, masks = crops(count, side)
    masked = images.masked_fill(masks, 0)
    prediction = benchmark.pedantic(method.inpaint, (masked, masks), rounds=1, iterations=1)
    assert prediction.shape == images.shape
    seconds = benchmark.stats.stats.median
    benchmark.extra_info["images_per_s"] = count / seconds
    if side in BARE:
        benchmark.extra_info["time_over_bare_telea"] = seconds / BARE[side]

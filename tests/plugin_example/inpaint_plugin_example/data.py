"""``example-gradients``: synthetic colour gradients with a few discs, generated offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.datasets import TensorDataset

#: Images of each split are drawn from disjoint seed ranges, so no image is in both.
SPLIT_SEEDS = {"test": 0, "train": 1_000_000}


def _image(seed: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    start, slope = rng.random((2, 3, 2))
    image = start[:, :1, None] + slope[:, :1, None] * y + slope[:, 1:, None] * x
    for _ in range(3):  # a few discs give the methods edges to keep
        cy, cx, radius = rng.random(3) * [1, 1, 0.3]
        image[:, (y - cy) ** 2 + (x - cx) ** 2 < radius**2] = rng.random((3, 1))
    return np.clip(image.transpose(1, 2, 0) * 255, 0, 255).round().astype(np.uint8)


def gradients(
    *,
    split: str = "test",
    size: int | None = None,
    data_dir: str | Path | None = None,
    count: int = 64,
) -> TensorDataset:
    """Synthetic colour gradients with a few flat discs, generated offline (side 32 by default).

    ``count`` images per split; ``data_dir`` is unused.
    """
    side = 32 if size is None else size
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be an integer >= 1, got {count!r}")
    first = SPLIT_SEEDS[split]
    pixels = np.stack([_image(first + i, side) for i in range(count)])
    return TensorDataset(pixels, split)
